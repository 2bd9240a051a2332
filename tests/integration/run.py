#!/usr/bin/python3
"""Run the integration tests (tests/integration/test_*.py) and print
   integration: N passed, N failed, N skipped
Each test method has its own hard deadline (see harness.TestCase)."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test_*.py"
    suite = unittest.defaultTestLoader.discover(HERE, pattern=pattern,
                                                top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(result.failures) + len(result.errors) + \
        len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    good = result.testsRun - bad - skipped
    print("integration: %d passed, %d failed, %d skipped" % (good, bad, skipped))
    return 1 if bad or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
