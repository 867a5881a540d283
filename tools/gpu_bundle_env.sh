# shellcheck shell=bash
# Copied into the GPU bundle as env.sh by tools/gpu_bundle.sh. Source it (bash) before running anything
# from the bundle:   source .deps/gpu_bundle/env.sh
# It makes the carried Open MPI, PMIx and HDF5 the ones used, wherever the folder lies:
#  - Open MPI 4.1 and PMIx 4 find their components, help files and mca-params.conf through OPAL_* and
#    PMIX_* (their installdirs "env" components; Debian's own paths are compiled in otherwise). The MCA
#    settings (btl self,vader, ...) are in runtime/openmpi/etc/openmpi-mca-params.conf; OMPI_MCA_* overrides.
#  - LD_LIBRARY_PATH puts runtime/lib first (it wins over the binaries' RUNPATH); CUDA, cuBLASLt, NCCL
#    and libcuda are the machine's own: put NCCL's wheel directory on LD_LIBRARY_PATH too.
#  - A fallback build there: cmake ... -DMPI_HOME="$MPI_HOME" -DHDF5_ROOT="$HDF5_ROOT" (mpicxx reports
#    the carried headers and libraries; FindHDF5 takes runtime/hdf5/{include,lib}).
xp_bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
xp_ompi=$xp_bundle/runtime/openmpi
xp_pmix=$xp_bundle/runtime/pmix
export OPAL_PREFIX=$xp_ompi OPAL_EXEC_PREFIX=$xp_ompi OPAL_BINDIR=$xp_ompi/bin OPAL_SBINDIR=$xp_ompi/bin \
  OPAL_LIBEXECDIR=$xp_ompi/bin OPAL_LIBDIR=$xp_bundle/runtime/lib OPAL_PKGLIBDIR=$xp_ompi/lib/openmpi3 \
  OPAL_INCLUDEDIR=$xp_ompi/include OPAL_PKGINCLUDEDIR=$xp_ompi/include/openmpi \
  OPAL_DATAROOTDIR=$xp_ompi/share OPAL_DATADIR=$xp_ompi/share OPAL_PKGDATADIR=$xp_ompi/share/openmpi \
  OPAL_SYSCONFDIR=$xp_ompi/etc
export PMIX_PREFIX=$xp_pmix PMIX_EXEC_PREFIX=$xp_pmix PMIX_LIBDIR=$xp_pmix/lib PMIX_PKGLIBDIR=$xp_pmix/lib/pmix \
  PMIX_DATAROOTDIR=$xp_pmix/share PMIX_DATADIR=$xp_pmix/share PMIX_PKGDATADIR=$xp_pmix/share/pmix \
  PMIX_SYSCONFDIR=$xp_pmix/etc
# hwloc's plugins are not carried, and the machine's own (another hwloc version) must not be loaded
export HWLOC_PLUGINS_PATH=$xp_bundle/runtime/lib/hwloc
export PATH=$xp_ompi/bin:$PATH
export LD_LIBRARY_PATH=$xp_bundle/runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export MPI_HOME=$xp_ompi HDF5_ROOT=$xp_bundle/runtime/hdf5
unset xp_bundle xp_ompi xp_pmix
