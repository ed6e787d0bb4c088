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

# the wire format against hostile bytes (no workers)
add_test(NAME torch.wire
  COMMAND ${RXP_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_wire.py)
set_tests_properties(torch.wire PROPERTIES
  LABELS torch TIMEOUT 120 ENVIRONMENT "${rxp_torch_env}")

# examples/torch under torchrun: the world forms on torchrun's store, beside
# a gloo process group on the same MASTER_PORT. (Debian 12's torchrun on
# Python 3.11 cannot parse its default --redirects 0: give it 1.)
add_test(NAME torch.torchrun_ps
  COMMAND ${RXP_PYTHON} -m torch.distributed.run --standalone --nnodes=1
    --nproc_per_node=3 --redirects 1 --tee 1
    ${PROJECT_SOURCE_DIR}/examples/torch/ps_train.py --steps 40)
set_tests_properties(torch.torchrun_ps PROPERTIES
  LABELS torch TIMEOUT 300 ENVIRONMENT "${rxp_torch_env}")

# torch over RDMA (issue 9 item 5): the CI verbs stage runs `ctest -L verbs`
# in the rxe guest (ci/rxe-vm.sh), with RXP_TEST_REQUIRE_DEVICE=1 so that a
# missing device fails there; a host without an RDMA device skips (77).
# Its own bounds are 30 s x RXP_TEST_TIMEOUT_SCALE (600 s in the guest).
add_test(NAME torch.verbs
  COMMAND ${RXP_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/worlds.py verbs)
set_tests_properties(torch.verbs PROPERTIES
  LABELS "torch;verbs" TIMEOUT 700 SKIP_RETURN_CODE 77
  ENVIRONMENT "${rxp_torch_env}")
