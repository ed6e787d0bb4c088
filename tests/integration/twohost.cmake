# Two hosts stood in for by two network namespaces and a veth pair
# (root only; skipped with 77 otherwise).
if(TARGET rxp_pingpong)
  add_test(NAME twohost COMMAND sh ${RXP_TEST_DIR}/twohost.sh $<TARGET_FILE:rxp_pingpong>)
  set_tests_properties(twohost PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    LABELS integration RUN_SERIAL TRUE)
endif()
