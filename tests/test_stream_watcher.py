"""The web app's blocking reads of Redis streams share one reader per process: many pages
waiting on one job's log hold one blocked connection, and every one gets every entry."""

from __future__ import annotations

import threading

from ci.stream_watcher import connect_fan_out
from tests.conftest import wait_for

VIEWERS = 300


def blocked_readers(redis_client) -> int:
    return sum(1 for client in redis_client.client_list()
               if client["cmd"] == "xread" and "b" in client["flags"])


def test_three_hundred_waiting_readers_hold_one_blocked_connection_and_all_get_each_entry(
        redis_client, redis_url):
    web = connect_fan_out(redis_url, socket_timeout=30)
    first = redis_client.xadd("log", {"line": "first"}).decode()
    got: list[list[str]] = [[] for _ in range(VIEWERS)]

    def follow(index: int) -> None:
        after = first
        while len(got[index]) < 3:
            for _name, entries in web.xread({"log": after}, block=10_000) or []:
                for entry_id, fields in entries:
                    got[index].append(fields[b"line"].decode())
                    after = entry_id

    viewers = [threading.Thread(target=follow, args=(index,)) for index in range(VIEWERS)]
    for viewer in viewers:
        viewer.start()
    wait_for(lambda: web.watcher.waiting_on("log") == VIEWERS, what="every viewer waiting")
    assert blocked_readers(redis_client) == 1
    for line in ("one", "two", "three"):
        redis_client.xadd("log", {"line": line})
    for viewer in viewers:
        viewer.join(timeout=30)
    assert got == [["one", "two", "three"]] * VIEWERS
    # Nobody waits any more: the watcher's reader ends and gives its connection back.
    wait_for(lambda: blocked_readers(redis_client) == 0 and not web.watcher.running,
             what="the watcher stopped")


def test_a_wait_times_out_with_nothing_and_dollar_still_means_what_comes_next(
        redis_client, redis_url):
    web = connect_fan_out(redis_url, socket_timeout=30)
    newest = redis_client.xadd("log", {"line": "old"}).decode()
    assert web.xread({"log": newest}, block=200) == []
    assert not web.xread({"log": "$"}, block=200)
    # Entries after the id asked for are read at once, without waiting.
    assert [fields[b"line"] for _name, entries in web.xread({"log": "0-0"}, block=60_000)
            for _id, fields in entries] == [b"old"]


def test_a_reader_behind_what_the_watcher_keeps_reads_the_older_entries_from_redis(
        redis_client, redis_url):
    web = connect_fan_out(redis_url, socket_timeout=30)
    old = [redis_client.xadd("log", {"line": f"old {n}"}).decode() for n in range(3)]
    waiting = threading.Thread(target=web.xread, args=({"log": old[-1]},),
                               kwargs={"block": 10_000})
    waiting.start()
    wait_for(lambda: web.watcher.waiting_on("log") == 1, what="a reader waiting at the end")
    redis_client.xadd("log", {"line": "new"})
    waiting.join(timeout=30)
    # The watcher keeps what came after the first reader's id; this one asks for more.
    lines = [fields[b"line"] for _name, entries in web.xread({"log": old[0]}, block=10_000)
             for _id, fields in entries]
    assert lines == [b"old 1", b"old 2", b"new"]
