"""A step's output read ahead in a thread of its own (runners.read_ahead): what came while a
piece was being sent goes on as one, nothing is lost or reordered, errors arrive after
the output before them, and a step printing faster than it is sent is held back."""

from __future__ import annotations

import threading

import pytest

from runners import read_ahead as module
from runners.read_ahead import read_ahead
from tests.polling import wait_for


def test_what_came_while_a_piece_was_passed_on_goes_as_one_piece():
    first_taken, all_read = threading.Event(), threading.Event()

    def engine():
        yield b"one "
        first_taken.wait(10)
        yield from (b"two ", b"three ", b"four")
        all_read.set()
        yield b"!"

    pieces = read_ahead(engine())
    assert next(pieces) == b"one "
    first_taken.set()
    assert all_read.wait(10)
    assert b"".join(pieces).startswith(b"two three four")


def test_pieces_are_cut_at_the_piece_size_and_keep_every_byte_in_order(monkeypatch):
    monkeypatch.setattr(module, "PIECE_BYTES", 10)
    chunks = [bytes([65 + n % 26]) * 4 for n in range(200)]
    pieces = list(read_ahead(iter(chunks)))
    assert b"".join(pieces) == b"".join(chunks)
    assert all(len(piece) <= 10 + 4 for piece in pieces)


def test_an_error_of_the_stream_comes_after_the_output_before_it():
    def engine():
        yield b"last words\n"
        raise ConnectionError("the engine went away")

    received = []
    with pytest.raises(ConnectionError, match="went away"):
        for piece in read_ahead(engine()):
            received.append(piece)
    assert b"".join(received) == b"last words\n"


def test_a_step_printing_faster_than_its_output_is_sent_is_held_back(monkeypatch):
    monkeypatch.setattr(module, "AHEAD", 3)
    read, consumed, overrun = [0], [0], []

    def engine():
        for n in range(40):
            read[0] += 1
            # Taken from the engine: the pieces passed on, 3 waiting, one held by the reader.
            if read[0] - consumed[0] > 3 + 2:
                overrun.append(read[0])
            yield b"x" * 100

    pieces = read_ahead(engine())
    consumed[0] += len(next(pieces)) // 100
    wait_for(lambda: read[0] == consumed[0] + 3 + 1, what="the reader waiting on a full queue")
    for piece in pieces:
        consumed[0] += len(piece) // 100
    assert consumed[0] == 40
    assert overrun == []


def test_a_consumer_that_stops_early_leaves_the_reader_to_end_with_the_stream():
    go_on, ended = threading.Event(), threading.Event()

    def engine():
        try:
            yield b"first"
            go_on.wait(10)
            yield from (b"more" for _ in range(1000))
        finally:
            ended.set()

    pieces = read_ahead(engine())
    assert next(pieces) == b"first"
    pieces.close()
    go_on.set()
    assert ended.wait(10), "the reader still holds the stream"
