"""Where a compiled model runs, decided in one place: this machine, a board reached over SSH where edgecc
itself runs (ssh.py, board.py), or a board behind a TVM RPC server or tracker, through the backend's RPC
runner (Backend.open_rpc_runner; TVM's is edgecc.backends.tvm.rpc).

device.py parses ``--device`` into a typed device; run.py runs a profile (or a compare on a board) there.
"""
