"""A step's output passed on from a thread of its own (runners.output_pieces): what came
while a piece was being sent goes on as one, nothing is lost or reordered, a failed send
is raised in the caller's thread, and a step printing faster than it is sent is held
back rather than piled up."""

from __future__ import annotations

import threading

import pytest

from runners import output_pieces as module
from runners.output_pieces import sent_in_pieces
from tests.polling import wait_for


def test_what_came_while_a_piece_was_being_sent_goes_as_one_piece():
    sent, first_sent, go_on = [], threading.Event(), threading.Event()

    def send(piece: bytes) -> None:
        sent.append(piece)
        first_sent.set()
        go_on.wait(10)  # Redis is slow to answer this one

    with sent_in_pieces(send) as forward:
        forward(b"one ")
        assert first_sent.wait(10)
        for chunk in (b"two ", b"three ", b"four"):
            forward(chunk)
        go_on.set()
    assert sent == [b"one ", b"two three four"]


def test_pieces_end_at_the_piece_size_and_keep_every_byte_in_order(monkeypatch):
    monkeypatch.setattr(module, "PIECE_BYTES", 10)
    chunks = [bytes([65 + n % 26]) * 4 for n in range(200)]
    sent = []
    with sent_in_pieces(sent.append) as forward:
        for chunk in chunks:
            forward(chunk)
    assert b"".join(sent) == b"".join(chunks)
    assert all(len(piece) < 10 + 4 for piece in sent)


def test_a_failed_send_is_raised_in_the_callers_thread_once_the_rest_is_drained(monkeypatch):
    monkeypatch.setattr(module, "AHEAD", 2)

    def send(piece: bytes) -> None:
        raise ValueError("the masker choked")

    with pytest.raises(ValueError, match="choked"):
        with sent_in_pieces(send) as forward:
            for _ in range(50):  # more than the queue holds: none of these waits forever
                forward(b"x")


def test_an_error_of_the_stream_is_not_hidden_by_the_sending(monkeypatch):
    sent = []
    with pytest.raises(ConnectionError, match="went away"):
        with sent_in_pieces(sent.append) as forward:
            forward(b"last words\n")
            raise ConnectionError("the engine went away")
    assert sent == [b"last words\n"]  # what came before the error still went


def test_a_step_printing_faster_than_its_output_is_sent_is_held_back(monkeypatch):
    monkeypatch.setattr(module, "AHEAD", 3)
    sending, go_on, queued = threading.Event(), threading.Event(), [0]

    def send(piece: bytes) -> None:
        sending.set()
        go_on.wait(10)

    def step() -> None:
        with sent_in_pieces(send) as forward:
            forward(b"x" * 100)
            sending.wait(10)
            for _ in range(39):
                forward(b"x" * 100)
                queued[0] += 1

    printing = threading.Thread(target=step)
    printing.start()
    # One piece on its way and 3 waiting: the next waits for room, and the step with it.
    wait_for(lambda: queued[0] == 3, what="the queue full")
    printing.join(0.2)
    assert printing.is_alive() and queued[0] == 3
    go_on.set()
    printing.join(10)
    assert queued[0] == 39
