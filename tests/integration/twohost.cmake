# Two hosts stood in for by two network namespaces and a veth pair
# (root only; skipped with 77 otherwise).
if(TARGET rxp_pingpong)
  # perf/ is configured after tests/: pass rxp-perf's path (the script
  # skips that part when it is not built)
  # the mixed world's worker (two ranks on one "host", one on the other)
  add_executable(mixed_worker ${RXP_TEST_DIR}/mixed_worker.c)
  target_link_libraries(mixed_worker PRIVATE rxp)
  add_test(NAME twohost COMMAND sh ${RXP_TEST_DIR}/twohost.sh
    $<TARGET_FILE:rxp_pingpong> ${CMAKE_BINARY_DIR}/perf/rxp-perf
    $<TARGET_FILE:mixed_worker>)
  set_tests_properties(twohost PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    LABELS integration RUN_SERIAL TRUE)
endif()
