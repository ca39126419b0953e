"""moto_server, the tests' stand-in for SNS and SQS, with one change for speed.

moto's SQS builds a queue's whole attribute map for every message sent to it, counting the
queue's messages each time, and tells the time for each message it counts through datetime
arithmetic, and turns each attribute name into a method name with regexes: sending grows with
the queue's depth, and the bus tests' thousands of events took minutes. Here the clock is read
with time.time() (the same epoch milliseconds) and the name conversion is memoised; what moto
accepts, refuses and returns is unchanged.

Run with moto's own interpreter: python moto_server.py -p PORT
"""

import functools
import sys
import time

from moto.sqs import models

_unix_time_millis = models.unix_time_millis


def unix_time_millis(dt=None):
    if dt is None:
        return time.time() * 1000.0
    return _unix_time_millis(dt)


models.unix_time_millis = unix_time_millis
models.camelcase_to_underscores = functools.lru_cache(maxsize=None)(
    models.camelcase_to_underscores
)

from moto.server import main  # noqa: E402

sys.exit(main())
