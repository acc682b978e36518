# auth: JWT verification (libjwt + jansson).  The key check at startup
# parses PEM public keys with OpenSSL's libcrypto, which libjwt already
# uses; link it explicitly since we call it directly.
AUTH_OBJS = auth

UNIT_TESTS += test_auth
test_auth_OBJS = ../test/unit/test_auth $(AUTH_OBJS)
test_auth_ARGS = ../test/unit
