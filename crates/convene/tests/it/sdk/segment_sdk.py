"""Drives the official Segment Python SDK (segment-analytics-python) against
a running convene; run by tests/it/segment_sdk.rs.

Environment: CONVENE_SEGMENT_HOST (e.g. http://127.0.0.1:PORT/compat/segment),
CONVENE_WRITE_KEY, CONVENE_GZIP ("1" to compress request bodies).
Exits non-zero when the SDK reports any error.
"""

import os
import sys

import segment.analytics as analytics

errors = []


def on_error(error, batch):
    errors.append("{!r} ({} message(s))".format(error, len(batch)))


analytics.write_key = os.environ["CONVENE_WRITE_KEY"]
analytics.host = os.environ["CONVENE_SEGMENT_HOST"]
analytics.gzip = os.environ.get("CONVENE_GZIP") == "1"
analytics.on_error = on_error
analytics.max_retries = 1
analytics.timeout = 10

analytics.identify("user-1", {"email": "sdk@x.io", "plan": "pro"})
analytics.track("user-1", "Signed Up", {"plan": "pro"})
analytics.page("user-1", "Docs", "Quickstart", {"path": "/docs/quickstart"})
analytics.group("user-1", "sdk-company", {"name": "SDK Inc"})
analytics.flush()
analytics.shutdown()

if errors:
    print("the Segment SDK reported errors:", file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    sys.exit(1)
print("segment sdk: all messages sent")
