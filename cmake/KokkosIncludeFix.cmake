# Debian's Kokkos 3.4 (from Trilinos) exports Kokkos::kokkos with an include directory that does not
# exist (<prefix>/lib/include); point it at the headers its own config variables name. Included after
# find_package(Kokkos) by the main build and the fuzz build.
get_target_property(_kokkos_inc Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
if(Kokkos_INCLUDE_DIRS)
  foreach(_dir IN LISTS _kokkos_inc)
    if(NOT EXISTS "${_dir}")
      set_target_properties(Kokkos::kokkos PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${Kokkos_INCLUDE_DIRS}")
      break()
    endif()
  endforeach()
endif()
