# cellcms_rt: the PostgreSQL extension is built by PGXS from this file; the
# GROQ library (groq/Makefile) and the relay (relay/Makefile) have their own
# Makefiles, reached through the targets at the bottom.  Every build output
# goes under build/.  `make run` and `make test` are the two commands of the
# README.

EXTENSION = cellcms_rt
MODULE_big = cellcms_rt
OBJS = $(patsubst %.c,%.o,$(wildcard extension/*.c))
DATA = extension/cellcms_rt--1.0.sql
PGFILEDESC = "cellcms_rt - change log and NOTIFY for CMS document tables"

REGRESS = watch changes log_readers
REGRESS_OPTS = --temp-instance=build/regress/tmp_check --outputdir=build/regress \
	--load-extension=cellcms_rt
ISOLATION = payloads commit_order late_commit rewatch
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=build/isolation \
	--temp-instance=build/isolation/tmp_check --load-extension=cellcms_rt \
	--launcher=$(CURDIR)/test/isolation/normalize.sh

PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.DEFAULT_GOAL := all

# The README's commands must work on a machine that has nothing installed
# yet, when pg_config and PGXS do not exist: they install first, then
# re-enter make.
.PHONY: run test groq relay native-clean bench bench-smoke
run:
	@scripts/run.sh
test:
	@scripts/test-all.sh

# Benchmarks print figures; they assert nothing about time.  bench-smoke runs
# the relay benchmark at tiny sizes and fails only when an event is lost.
bench: all install
	test/bench/extension/run.sh
	build/bin/bench-groq
	test/bench/relay/run.sh
bench-smoke: all install
	test/bench/relay/run.sh --smoke

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)

all: relay
clean: native-clean
else
all install installcheck:
	@echo "PostgreSQL's PGXS was not found ($(PG_CONFIG) --pgxs); run scripts/deps.sh, or make run / make test, which install it" >&2
	@exit 1
endif

# The relay's build asks groq/ for the library itself.
groq:
	$(MAKE) -C groq
relay: groq
	$(MAKE) -C relay PG_CONFIG=$(PG_CONFIG)
native-clean:
	rm -rf build
