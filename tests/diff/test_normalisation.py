"""The differential record's normalisation keeps what it claims to keep:
these run the Recorder on made-up Stats (no server), so a normalisation that
hid a difference (a time outside its op's window, an mtime one millisecond
off ctime, a reply zxid unequal to the write's mzxid, a zxid going down, a
different error code) fails here rather than letting the diff pass."""

from kazoo.exceptions import NoNodeError, NotEmptyError
from kazoo.protocol.states import ZnodeStat

import scenario

MS_PER_DAY = 86_400_000


def _stat(ctime, mtime, czxid=10, mzxid=10, pzxid=10, version=0):
    return ZnodeStat(czxid, mzxid, ctime, mtime, version, 0, 0, 0, 0, 0, pzxid)


def _results(record):
    return [fields["result"] for _, fields in record]


def test_times_are_named_after_the_op_window_they_fall_in():
    rec = scenario.Recorder({})
    made = {}

    def create():
        made["t"] = scenario.now_ms()
        return _stat(made["t"], made["t"])

    def later_write():
        return _stat(made["t"], scenario.now_ms(), mzxid=11, version=1)

    def two_clock_reads():
        ctime = scenario.now_ms()
        mtime = ctime
        while mtime == ctime:  # a server reading its clock twice for one create
            mtime = scenario.now_ms()
        return _stat(ctime, mtime)

    rec.op("create", create)
    rec.op("set", later_write)
    rec.op("two clock reads", two_clock_reads)
    rec.op("time from elsewhere", lambda: _stat(made["t"] - MS_PER_DAY, made["t"] - MS_PER_DAY))
    results = _results(rec.finish())
    assert "ctime=t0, mtime='=ctime'" in results[0]
    assert "ctime=t0, mtime=t1" in results[1]
    assert "ctime=t2, mtime=t2_1" in results[2]
    assert f"ctime=t?{made['t'] - MS_PER_DAY}" in results[3]


def test_zxids_are_named_after_first_appearance_and_replies_are_kept():
    rec = scenario.Recorder({})
    rec.op("write", lambda: _stat(0, 0, czxid=5, mzxid=5, pzxid=5))
    rec.op("write whose reply zxid differs", lambda: (scenario.Zxid(6), _stat(0, 0, czxid=5, mzxid=7, pzxid=5)))
    rec.op("read", lambda: [scenario.Zxid(7), scenario.Zxid(0)])
    record = rec.finish()
    results = _results(record)
    assert "czxid=z0, mzxid=z0, pzxid=z0" in results[0]
    assert results[1].startswith("[z1, {czxid=z0, mzxid=z1_1")
    assert results[2] == "[z1_1, 0]"
    assert dict(record)["zxid order"]["result"] == "z0 < z1 < z1_1"


def test_reply_zxids_going_down_are_reported():
    rec = scenario.Recorder({})
    rec.reply_zxids["c1"] = [3, 4, 4, 9]
    rec.reply_zxids["c2"] = [3, 5, 4]
    record = dict(rec.finish())
    assert record["c1 reply zxids non-decreasing"]["result"] == "True"
    assert record["c2 reply zxids non-decreasing"]["result"] == "False"


def test_errors_keep_their_numeric_code():
    rec = scenario.Recorder({})
    rec.op("missing", lambda: (_ for _ in ()).throw(NoNodeError()))
    rec.op("not empty in a multi", lambda: [NotEmptyError(), True])
    assert _results(rec.finish())[:2] == ["'!-101 NoNodeError'", "['!-111 NotEmptyError', True]"]
