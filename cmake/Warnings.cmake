# One warnings target every SCALE target links (STYLE.md "Build").
add_library(scale_warnings INTERFACE)
target_compile_options(scale_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion
   -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Wno-missing-field-initializers>)
if(SCALE_WERROR)
  target_compile_options(scale_warnings INTERFACE $<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
