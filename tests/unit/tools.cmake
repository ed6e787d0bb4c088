# The tools' command lines: exit codes and errors (tools/).
if(TARGET rxp-info)
  add_test(NAME rxp_info_exit
    COMMAND sh ${RXP_TEST_DIR}/rxp_info_exit.sh $<TARGET_FILE:rxp-info>)
  set_tests_properties(rxp_info_exit PROPERTIES LABELS unit TIMEOUT 30)
endif()
