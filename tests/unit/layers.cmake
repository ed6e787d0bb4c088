# Layer probes: proof that a layer sees only the layers below it. Each probe
# is a one-line file that includes a header, built (by the test, not by
# `all`) with the include paths of one layer library. A header of a higher
# layer must not be found; the positive controls show the probes can build.
# ci/layers.sh checks the rest (internal headers, the core naming a feature).
set(_probes
  # name            layer it is built as   header it includes  must build?
  "core_rref        rxp_agent               rref_int.h          NO"
  "core_profiler    rxp_agent               profiler.h          NO"
  "core_features    rxp_agent               rref.h              NO"
  "transport_agent  rxp_transport           agent_int.h         NO"
  "tcp_codec        rxp_tcp                 codec.h             NO"
  "codec_transport  rxp_codec               rxp_transport.h     NO"
  "util_codec       rxp_util                codec.h             NO"
  "rdv_agent        rxp_rendezvous          agent_int.h         NO"
  "rref_core        rxp_rref                agent_int.h         YES"
  "rref_own         rxp_rref                rref_int.h          YES"
  "agent_transport  rxp_agent               rxp_transport.h     YES")
foreach(p IN LISTS _probes)
  string(REGEX REPLACE " +" ";" p "${p}")
  list(GET p 0 name)
  list(GET p 1 layer)
  list(GET p 2 header)
  list(GET p 3 ok)
  if(NOT TARGET ${layer})
    continue()
  endif()
  set(src ${CMAKE_CURRENT_BINARY_DIR}/layer_probe_${name}.c)
  file(WRITE ${src} "#include \"${header}\"\nint rxp_layer_probe_${name};\n")
  add_library(layer_probe_${name} OBJECT EXCLUDE_FROM_ALL ${src})
  target_link_libraries(layer_probe_${name} PRIVATE ${layer})
  add_test(NAME layer_probe.${name}
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target layer_probe_${name})
  set_tests_properties(layer_probe.${name} PROPERTIES LABELS "unit;layers"
    RESOURCE_LOCK rxp_build_tree TIMEOUT 120)
  if(NOT ok)
    set_tests_properties(layer_probe.${name} PROPERTIES
      PASS_REGULAR_EXPRESSION "${header}: No such file|'${header}' file not found")
  endif()
endforeach()
