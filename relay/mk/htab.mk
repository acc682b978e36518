# htab: intrusive hash table + SipHash, shared by presence, subs and hub.
HTAB_OBJS = htab
