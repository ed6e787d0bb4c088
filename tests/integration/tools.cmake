# The tools' command lines: --help, bad usage, and an rxp-perf -a / --bw
# run over tcp on the loopback of a private network namespace, its JSON
# read by python3 (tools.sh; skipped with 77 without unshare -n).
# perf/ is added after tests/, so test for what builds rxp-perf.
if(RXP_BUILD_PERF AND TARGET rxp_agent AND TARGET rxp-info)
  add_test(NAME tools COMMAND sh ${RXP_TEST_DIR}/tools.sh
    ${CMAKE_BINARY_DIR}/perf/rxp-perf $<TARGET_FILE:rxp-info>
    ${RXP_TEST_DIR}/check_perf_json.py ${CMAKE_BINARY_DIR}/perf/tcp_pingpong)
  set_tests_properties(tools PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    LABELS integration RUN_SERIAL TRUE)
endif()
