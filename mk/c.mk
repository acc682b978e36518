# Compiler settings and output directories shared by groq/Makefile and
# relay/Makefile (the extension is built by PGXS from the top Makefile).
#
# Every output goes under $(OUT):
#   make                 OUT = build/        optimised, -Werror
#   make VARIANT=asan    OUT = build/asan/   AddressSanitizer + UBSan
# with objects in $(OUT)/obj/, libraries in $(OUT)/lib/, programs in
# $(OUT)/bin/ and unit-test binaries in $(OUT)/test/.  BUILD_ROOT moves the
# whole tree elsewhere (two builds of one checkout at once).

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BUILD_ROOT ?= $(TOP)/build
VARIANT ?= default
ifeq ($(VARIANT),default)
OUT = $(BUILD_ROOT)
else
OUT = $(BUILD_ROOT)/$(VARIANT)
endif

CC ?= cc
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter
CFLAGS = -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE
ifeq ($(VARIANT),asan)
CFLAGS = -std=gnu11 -O1 -g -fno-omit-frame-pointer $(WARN) -D_GNU_SOURCE \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# Unit-test sources (any path with a test/ component) include
# test/unit/unit.h; production sources do not get that directory.
TEST_CPPFLAGS = -I$(TOP)/test/unit
is_test = $(findstring test/,$(patsubst $(OUT)/obj/%,%,$(1)))

# A source path relative to the repository's top (groq/groq_lex,
# test/unit/test_hub) -> its object.
obj = $(patsubst %,$(OUT)/obj/%.o,$(1))

$(OUT)/obj/%.o: $(TOP)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(if $(call is_test,$@),$(TEST_CPPFLAGS)) $(CFLAGS) -MMD -MP -c -o $@ $<

VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect,possible --track-origins=yes
