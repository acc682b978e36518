# Relay benchmark programs (test/bench/relay/run.sh): a WebSocket load
# generator (own epoll client; libcrypto for signing tokens) and a writer
# committing changes at a fixed rate (libpq).  Neither links relay modules.
PROGRAMS += bench-loadgen bench-writer
bench-loadgen_OBJS = ../test/bench/relay/loadgen
bench-writer_OBJS = ../test/bench/relay/writer
