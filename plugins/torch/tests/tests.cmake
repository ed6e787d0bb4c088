# The torch plugin's tests: one ctest per world scenario (worlds.py), run
# with Debian's /usr/bin/python3 against the package in the build tree.
set(rxp_torch_env
  PYTHONPATH=${CMAKE_BINARY_DIR}/python
  PYTHONDONTWRITEBYTECODE=1
  RXP_LOG=warn
  OMP_NUM_THREADS=1)
foreach(s two three four kill inflight ungraceful dupname)
  add_test(NAME torch.${s}
    COMMAND ${RXP_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/worlds.py ${s})
  set_tests_properties(torch.${s} PROPERTIES
    LABELS torch TIMEOUT 300 ENVIRONMENT "${rxp_torch_env}")
endforeach()
