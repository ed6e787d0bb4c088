#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The torch message wire format (csrc/wire.h) on its own: round trips of
every kind of tensor the agent carries, and hostile bytes: every
truncation, every byte of the envelope and metadata changed, storages
missing or short. A bad message must raise (never crash), and whatever
decodes must stay inside its storages.

    PYTHONPATH=build/python /usr/bin/python3 plugins/torch/tests/test_wire.py
"""
import random
import struct
import unittest

import torch

import rxp_torch._C as C

SCRIPT_CALL, SCRIPT_RET = 0x100, 0x201
ENVELOPE = 32


def in_bounds(t):
    """Every element of a strided tensor lies inside its storage."""
    if t.layout == torch.sparse_coo:
        return in_bounds(t._indices()) and in_bounds(t._values())
    if t.numel() == 0:
        return t.storage_offset() <= len(t.storage())
    last = t.storage_offset() + sum((s - 1) * st
                                    for s, st in zip(t.shape, t.stride()))
    return 0 <= t.storage_offset() and last < len(t.storage())


class RoundTrip(unittest.TestCase):
    def roundtrip(self, tensors, payload=b"pickled bytes", typ=SCRIPT_CALL):
        data, storages = C._wire_encode(typ, 42, payload, tensors)
        typ2, id2, pl2, out = C._wire_decode(data, storages)
        self.assertEqual((typ2, id2, pl2), (typ, 42, payload))
        self.assertEqual(len(out), len(tensors))
        for a, b in zip(tensors, out):
            self.assertEqual(a.dtype, b.dtype)
            self.assertEqual(a.requires_grad, b.requires_grad)
            self.assertEqual(a.layout, b.layout)
            if a.layout == torch.strided:
                self.assertEqual(a.stride(), b.stride())
                self.assertTrue(torch.equal(a, b))
            else:
                self.assertTrue(torch.equal(a.to_dense(), b.to_dense()))
        return data, storages, out

    def test_sizes_and_dtypes(self):
        ts = [torch.empty(0), torch.tensor([7], dtype=torch.uint8),
              torch.arange(1024, dtype=torch.float32),
              torch.ones(3, 4, dtype=torch.float64, requires_grad=True),
              torch.tensor([True, False]),
              torch.arange(6, dtype=torch.int64).reshape(2, 3),
              torch.ones(2, dtype=torch.bfloat16),
              torch.ones(2, dtype=torch.complex64),
              torch.tensor(3.5)]
        self.roundtrip(ts)

    def test_views_travel_once_and_share_on_arrival(self):
        base = torch.arange(100.)
        _, storages, out = self.roundtrip([base[10:20], base[15:40:5],
                                           base.view(10, 10).t()])
        self.assertEqual(len(storages), 1)
        ptrs = {t.storage().data_ptr() for t in out}
        self.assertEqual(len(ptrs), 1)

    def test_sparse_and_non_contiguous(self):
        sp = torch.sparse_coo_tensor([[0, 1], [1, 0]], [2., 3.], (2, 2))
        nc = torch.arange(12.).reshape(3, 4)[:, ::2]
        self.roundtrip([sp, sp.coalesce(), nc])

    def test_what_cannot_travel_is_refused_by_name(self):
        q = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8)
        with self.assertRaisesRegex(ValueError, "quantized"):
            C._wire_encode(SCRIPT_CALL, 1, b"", [q])
        with self.assertRaisesRegex(ValueError, "layout"):
            C._wire_encode(SCRIPT_CALL, 1, b"", [torch.ones(2, 2)
                                                 .to_sparse_csr()])


class Hostile(unittest.TestCase):
    def setUp(self):
        base = torch.arange(64.)
        sp = torch.sparse_coo_tensor([[0, 2]], [1., 2.], (4,))
        self.data, self.storages = C._wire_encode(
            SCRIPT_RET, 9, b"xyz", [base[8:16], base.view(8, 8).t(), sp,
                                    torch.ones(3, dtype=torch.int32)])
        self.meta_at = ENVELOPE + 3

    def decode_or_refuse(self, data, storages):
        try:
            _, _, _, out = C._wire_decode(data, storages)
        except ValueError:
            return False
        for t in out:
            self.assertTrue(in_bounds(t), "decoded tensor out of bounds")
        return True

    def test_every_truncation_is_refused(self):
        for n in range(len(self.data)):
            self.assertFalse(self.decode_or_refuse(self.data[:n],
                                                   self.storages), n)

    def test_every_header_and_metadata_byte_changed(self):
        rnd = random.Random(5)
        refused = 0
        for i in list(range(ENVELOPE)) + list(range(self.meta_at,
                                                    len(self.data))):
            for v in {0, 0xff, 0x7f, 0x80, rnd.randrange(256),
                      self.data[i] ^ 1}:
                if v == self.data[i]:
                    continue
                b = bytearray(self.data)
                b[i] = v
                refused += not self.decode_or_refuse(bytes(b), self.storages)
        self.assertGreater(refused, 0)

    def test_huge_sizes_offsets_and_strides_are_refused(self):
        # the first tensor's fields: head 4, size 8, index 4, offset 8, stride 8
        at = self.meta_at
        for field, width in ((at + 4, 8), (at + 12, 4), (at + 16, 8),
                             (at + 24, 8)):
            vals = ((2**31, 2**32 - 1, 65) if width == 4 else
                    (2**63 - 1, 2**62, 2**32, 65, 2**64 - 1))
            for v in vals:
                b = bytearray(self.data)
                b[field:field + width] = v.to_bytes(width, "little")
                self.assertFalse(self.decode_or_refuse(bytes(b),
                                                       self.storages),
                                 (field, v))

    def test_missing_or_short_storages(self):
        self.assertFalse(self.decode_or_refuse(self.data, self.storages[:-1]))
        short = [s[:len(s) // 2] for s in self.storages]
        self.assertFalse(self.decode_or_refuse(self.data, short))
        self.assertFalse(self.decode_or_refuse(self.data, self.storages +
                                               [b"extra"]))

    def test_bad_envelopes(self):
        d = self.data
        cases = {
            "magic": b"XXXX" + d[4:],
            "version": d[:4] + struct.pack("<H", 2) + d[6:],
            "type": d[:8] + struct.pack("<I", 0x42) + d[12:],
            "ntensors": d[:12] + struct.pack("<I", 10**6) + d[16:],
            "payload length": d[:20] + struct.pack("<I", 2**31) + d[24:],
            "trailing": d + b"\0",
            "empty": b"",
        }
        for what, b in cases.items():
            self.assertFalse(self.decode_or_refuse(b, self.storages), what)

    def test_random_garbage(self):
        rnd = random.Random(11)
        for _ in range(2000):
            n = rnd.randrange(0, 200)
            b = bytearray(rnd.randbytes(n))
            if n >= 8 and rnd.random() < 0.7:  # get past the magic often
                b[0:8] = self.data[0:8]
            self.decode_or_refuse(bytes(b), self.storages)


if __name__ == "__main__":
    unittest.main()
