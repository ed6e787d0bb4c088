# SPDX-License-Identifier: MIT
"""Stand-in for the PyPI package `expecttest`, which Debian 12 lacks and
torch.testing._internal.common_utils imports. The RPC suites use none of
its expect-file features: only the names below must exist."""
import unittest

ACCEPT = False


class TestCase(unittest.TestCase):
    longMessage = True

    def assertExpectedInline(self, actual, expect, skip=0):
        self.assertEqual(actual, expect)
