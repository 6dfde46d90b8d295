"""Lambda's platform log lines (lambdalet.logs)."""

import base64
import re

from lambdalet import logs


def test_report_line_is_tab_separated_with_a_trailing_tab():
    line = logs.report_line("id-1", 26.734, 128, 75)
    assert line == ("REPORT RequestId: id-1\tDuration: 26.73 ms\tBilled Duration: 27 ms\t"
                    "Memory Size: 128 MB\tMax Memory Used: 75 MB\t")


def test_report_line_of_a_cold_start_bills_init_and_shows_it():
    line = logs.report_line("id", 1.0, 256, 30, init_ms=100.5)
    assert "\tBilled Duration: 102 ms\t" in line and line.endswith("Init Duration: 100.50 ms\t")


def test_report_line_status_and_error_type():
    assert logs.report_line("id", 3000, 128, 20, status="timeout").endswith("\tStatus: timeout")
    assert logs.report_line("id", 5, 128, 20, status="error", error_type="Runtime.ExitError").endswith(
        "\tStatus: error\tError Type: Runtime.ExitError")


def test_start_end_and_timeout_lines():
    assert logs.start_line("abc", "$LATEST") == "START RequestId: abc Version: $LATEST"
    assert logs.end_line("abc") == "END RequestId: abc"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z abc Task timed out after 3\.00 seconds",
                        logs.timeout_line("abc", 3))


def test_tail_keeps_the_last_4kb():
    lines = [f"line {i:05d}" for i in range(2000)]
    decoded = base64.b64decode(logs.tail(lines))
    assert len(decoded) == 4096
    assert decoded.endswith(b"line 01999\n")


def test_stream_names_follow_lambdas_pattern():
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", logs.stream_name("$LATEST", "a" * 32))


def test_dot_names_are_files_of_their_own():
    from lambdalet.logs import decode_name, encode_name

    for name in (".", "..", "...", "/aws/lambda/f", "a..b"):
        encoded = encode_name(name)
        assert "/" not in encoded and encoded not in (".", "..") and decode_name(encoded) == name


def test_every_valid_name_is_one_file_name():
    from lambdalet.logs import LONG_NAME, decode_name, encode_name

    for name in ("/" * 512, "a" * 512, "/aws/lambda/" + "f" * 500, "\ud800x", "a" * 224):
        encoded = encode_name(name)
        assert len(encoded.encode()) <= 224 and "/" not in encoded
        assert decode_name(encoded) == name or (encoded.startswith(LONG_NAME) and decode_name(encoded) is None)
    assert encode_name("a" * 224) == "a" * 224 and encode_name("/" * 512) != encode_name("/" * 511)


def test_a_log_group_over_its_limit_loses_its_oldest_closed_streams_then_new_lines(tmp_path):
    from lambdalet.logs import LogStore

    store = LogStore(tmp_path, max_group_bytes=10_000)
    old = store.open_stream("g", "old")
    for i in range(40):
        old.write("o" * 100 + str(i))
    old.close()  # its environment is gone: first to go
    assert old.path.stat().st_size > 4000
    live = store.open_stream("g", "live")
    for i in range(70):
        live.write("x" * 100)
    store.flush_all()
    assert not old.path.exists()  # made room for the live stream
    for i in range(100):
        live.write("y" * 100)
    store.flush_all()
    text = live.path.read_text()
    assert text.count("dropped") == 1  # said once, and what came after it is gone
    assert text.splitlines()[-1].endswith("limit (--max-log-group-mb): lines of this stream are dropped until "
                                          "there is room.")
    assert live.path.stat().st_size <= 10_000 + 300  # the limit, and the one line that says so
    store.detach_group("g")
    live.path.unlink()  # as DeleteLogGroup does: room again
    live.write("z" * 100)
    store.flush_all()
    assert live.path.read_text().endswith("z" * 100 + "\n")


def test_no_limit_when_the_limit_is_zero(tmp_path):
    from lambdalet.logs import LogStore

    store = LogStore(tmp_path)
    stream = store.open_stream("g", "s")
    for _ in range(200):
        stream.write("x" * 1000)
    store.flush_all()
    assert stream.path.stat().st_size > 200_000


def test_a_dropping_stream_says_so_once_even_when_short_lines_would_fit(tmp_path):
    from lambdalet.logs import LogStore

    store = LogStore(tmp_path, max_group_bytes=10_000)
    stream = store.open_stream("g", "s")
    for _ in range(200):
        stream.write("x" * 1000)
        stream.write("short")  # fits in what the long lines leave
    store.flush_all()
    assert stream.path.read_text().count("dropped") == 1


def test_an_invocations_log_tail_keeps_a_few_kilobytes_whatever_it_printed():
    from lambdalet.invoke.types import LogTail
    from lambdalet.logs import TAIL_BYTES, tail

    lines = [f"line {i} " + "x" * (i % 700) for i in range(5000)] + ["y" * 100_000, "last"]
    kept = LogTail()
    kept.extend(lines)
    assert sum(len(line) + 1 for line in kept) < 2 * TAIL_BYTES + 2
    assert tail(list(kept)) == tail(lines)  # X-Amz-Log-Result is the same as with every line
