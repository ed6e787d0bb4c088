# Metrics as Prometheus reads them: the file of rxp_agent_metrics_write()
# and RXP_METRICS_FILE, parsed by Debian's python3-prometheus-client
# (ci/deps.sh installs it) through check_metrics.py.
set(RXP_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH
  "the Python with prometheus_client that test_metrics runs")
rxp_add_test(test_metrics SOURCES ${RXP_TEST_DIR}/test_metrics.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 ENV RXP_TRANSPORT=tcp)
target_compile_definitions(test_metrics PRIVATE
  RXP_TEST_SRC_DIR="${RXP_TEST_DIR}" RXP_TEST_PYTHON="${RXP_TEST_PYTHON}")
