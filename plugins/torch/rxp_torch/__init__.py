# SPDX-License-Identifier: MIT
"""rxp as a torch.distributed.rpc backend.

    import rxp_torch                      # registers the backend "RXP"
    rpc.init_rpc("worker0", rank=0, world_size=2,
                 backend=rpc.BackendType.RXP,
                 rpc_backend_options=rxp_torch.RxpRpcBackendOptions())

Everything above the agent (pickling, RRefs, distributed autograd, the
profiler, async_execution, TorchScript calls) is torch's own; rxp carries
the messages and their tensors (docs/torch.md). Importing this module
starts no thread.
"""

import torch.distributed as dist
import torch.distributed.rpc as rpc
from torch.distributed.rpc import api, backend_registry, constants

from ._C import RxpAgent, rxp_version  # noqa: F401

__all__ = ["RxpRpcBackendOptions", "RxpAgent", "BACKEND_NAME", "rxp_version"]

BACKEND_NAME = "RXP"
_TRANSPORTS = ("auto", "tcp", "verbs", "shm")


class RxpRpcBackendOptions(rpc.RpcBackendOptions):
    """Options of the RXP backend.

    rpc_timeout: default timeout of a call in seconds (0 = none).
    init_method: how torch forms the store ("env://", "tcp://h:p",
        "file:///path"); rxp forms its world through that store.
    num_worker_threads: threads that run incoming requests.
    transport: "auto" (verbs where an RDMA device reaches the peers, else
        tcp; shared memory between workers on one host), "tcp", "verbs"
        or "shm" (every worker on this host).
    bind_addr: numeric address for rxp's data connections ("" = the local
        address that reaches MASTER_ADDR, or $RXP_BIND_ADDR).
    init_timeout: seconds for the world to form (0 = rpc_timeout).
    poll_us: spin this long before sleeping (-1 = $RXP_POLL_US or 0).
    """

    def __init__(self, rpc_timeout=constants.DEFAULT_RPC_TIMEOUT_SEC,
                 init_method=constants.DEFAULT_INIT_METHOD,
                 num_worker_threads=16, transport="auto", bind_addr="",
                 init_timeout=0.0, poll_us=-1, device_maps=None,
                 devices=None, _transports=None, _channels=None):
        super().__init__(float(rpc_timeout), init_method)
        if device_maps or devices:
            raise ValueError("RXP does not support device_maps or devices "
                             "yet: CUDA tensors are not carried")
        if _transports is not None or _channels is not None:
            raise ValueError("_transports/_channels are TensorPipe options; "
                             "RXP takes transport=" + "|".join(_TRANSPORTS))
        if transport not in _TRANSPORTS:
            raise ValueError("transport must be one of %s, not %r"
                             % (_TRANSPORTS, transport))
        if not 1 <= int(num_worker_threads) <= 1024:
            raise ValueError("num_worker_threads must be 1..1024")
        self.num_worker_threads = int(num_worker_threads)
        self.transport = transport
        self.bind_addr = bind_addr
        self.init_timeout = float(init_timeout)
        self.poll_us = int(poll_us)
        self.device_maps = {}
        self.devices = []

    def set_device_map(self, to, device_map):
        raise ValueError("RXP does not support device_maps yet")

    def set_devices(self, devices):
        raise ValueError("RXP does not support devices yet")


def _options_handler(rpc_timeout, init_method, **kwargs):
    return RxpRpcBackendOptions(rpc_timeout=rpc_timeout,
                                init_method=init_method, **kwargs)


def _init_handler(store, name, rank, world_size, rpc_backend_options):
    if not isinstance(store, dist.Store):
        raise TypeError("`store` must be a c10d::Store, not %r" % (store,))
    if not isinstance(rpc_backend_options, RxpRpcBackendOptions):
        raise TypeError("`rpc_backend_options` must be "
                        "rxp_torch.RxpRpcBackendOptions, not %r"
                        % (type(rpc_backend_options),))
    if world_size is None:
        raise RuntimeError("RXP needs a static world: give init_rpc a "
                           "world_size (dynamic groups are not supported)")
    o = rpc_backend_options
    agent = RxpAgent(store, name, rank, world_size, o.rpc_timeout,
                     o.num_worker_threads, o.transport, o.bind_addr,
                     o.init_timeout, o.poll_us)
    api._init_rpc_states(agent)
    # as torch's own backends do: one round over every pair, then a
    # barrier so that nobody leaves before rank 0 has finished it
    timeout = o.init_timeout or o.rpc_timeout
    api._all_gather(None, timeout=timeout)
    agent.barrier(timeout)
    return agent


def _register():
    if not backend_registry.backend_registered(BACKEND_NAME):
        backend_registry.register_backend(BACKEND_NAME, _options_handler,
                                          _init_handler)
    # register_backend makes a new enum in backend_registry only; every
    # module that imported the old one must see the new one, or the old
    # members (TENSORPIPE, init_rpc's default) fail its type check
    rpc.BackendType = backend_registry.BackendType
    if hasattr(api, "BackendType"):
        api.BackendType = backend_registry.BackendType


_register()
