# config: settings table, command line and environment (pure).  The test
# checks RELAY_VERSION against the extension's control file.
CONFIG_OBJS = config
UNIT_TESTS += test_config
test_config_OBJS = ../test/unit/test_config $(CONFIG_OBJS)
test_config_ARGS = ../cellcms_rt.control
