"""A seeded population of simulated doctors who read, reply, ignore and sometimes opt out.

Their replies stand for real, consented traffic: a doctor only ever answers a message sent
to them, and one who has said "PARAR" never answers again. The same seed gives the same
doctors and, for the same sequence of messages, the same reactions, so tests can assert.
"""

from __future__ import annotations

import random
from typing import Literal

import msgspec

OPT_OUT_WORD = "PARAR"

_REPLIES = (
    "Oi! Tenho interesse, qual o valor do plantão?",
    "Qual o endereço do hospital?",
    "Posso no sábado à noite.",
    "Obrigado, no momento não consigo.",
    "Me manda mais detalhes, por favor.",
    "É plantão de 12h ou 24h?",
)
_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elisa", "Fábio", "Helena", "Igor", "Júlia", "Lucas")


class Doctor(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated doctor; the rates are probabilities per message received."""

    doctor_id: str
    phone: str  # E.164
    name: str
    reads: float
    replies: float
    opts_out: float


class Reaction(msgspec.Struct, frozen=True, kw_only=True):
    """What a doctor does with a message, `after` seconds from the send."""

    kind: Literal["delivered", "read", "reply"]
    after: float
    text: str | None = None


class DoctorPopulation:
    """The doctors who exist in the sandbox: only they are on WhatsApp."""

    def __init__(self, doctors: list[Doctor], *, seed: int, pace: float = 1.0) -> None:
        """:param pace: seconds that stand for one "beat" of reading/typing (tests use ~0.01)."""
        self._by_phone = {doctor.phone: doctor for doctor in doctors}
        self._rng = random.Random(seed)
        self._pace = pace
        self._opted_out: set[str] = set()

    @classmethod
    def seeded(cls, size: int, *, seed: int, pace: float = 1.0, ddd: int = 11) -> DoctorPopulation:
        """`size` doctors with mixed habits: eager repliers, silent readers, the odd opt-out."""
        rng = random.Random(seed)
        doctors = [
            Doctor(
                doctor_id=f"doc-{index:04d}",
                phone=f"+55{ddd}9{rng.randrange(10**7, 10**8)}",
                name=f"Dr(a). {rng.choice(_NAMES)}",
                reads=rng.uniform(0.5, 0.95),
                replies=rng.uniform(0.1, 0.6),
                opts_out=rng.uniform(0.0, 0.08),
            )
            for index in range(size)
        ]
        return cls(doctors, seed=seed, pace=pace)

    @property
    def doctors(self) -> list[Doctor]:
        return list(self._by_phone.values())

    @property
    def opted_out(self) -> frozenset[str]:
        """Phones of doctors who answered PARAR."""
        return frozenset(self._opted_out)

    def find(self, phone: str) -> Doctor | None:
        return self._by_phone.get(phone)

    def react(self, phone: str) -> list[Reaction]:
        """Reactions to one message sent to `phone` (delivered, maybe read, maybe a reply)."""
        doctor = self._by_phone[phone]
        reactions = [Reaction(kind="delivered", after=self._pace * 0.5)]
        if self._rng.random() >= doctor.reads:
            return reactions
        reactions.append(Reaction(kind="read", after=self._pace))
        if phone in self._opted_out:
            return reactions
        if self._rng.random() < doctor.opts_out:
            self._opted_out.add(phone)
            return [*reactions, Reaction(kind="reply", after=self._pace * 2, text=OPT_OUT_WORD)]
        if self._rng.random() < doctor.replies:
            text = self._rng.choice(_REPLIES)
            return [*reactions, Reaction(kind="reply", after=self._pace * 2, text=text)]
        return reactions

    def opt_out(self, phone: str) -> None:
        """Make a doctor opt out on their next read: for tests of the opt-out path."""
        doctor = self._by_phone[phone]
        self._by_phone[phone] = msgspec.structs.replace(doctor, reads=1.0, opts_out=1.0)
