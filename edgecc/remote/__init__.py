"""Where a compiled model runs when it is not this machine: boards over TVM RPC (remote.rpc)."""
