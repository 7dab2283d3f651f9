"""Synthetic, labelled support traffic: the training and benchmark data of privacy-ray.

Messages and conversations are composed from paraphrase families (``phrases/*.yaml``) in many
registers - chat lines, lowercase crowd questions, GDPR/CCPA letters, tickets, social posts,
developer posts, banking and travel utterances - with typos, PII and hard negatives, so that a
classifier trained on them has a chance on real human-written text.

>>> from privacy_ray.synth import generate_messages
>>> df = generate_messages(1000, seed=7)
"""

from privacy_ray.synth.compose import REGISTERS
from privacy_ray.synth.generator import (
    CONVERSATION_COLUMNS,
    DEFAULT_LABEL_MIX,
    DEFAULT_TYPO_RATE,
    MESSAGE_COLUMNS,
    generate_conversations,
    generate_messages,
)

__all__ = [
    "CONVERSATION_COLUMNS",
    "DEFAULT_LABEL_MIX",
    "DEFAULT_TYPO_RATE",
    "MESSAGE_COLUMNS",
    "REGISTERS",
    "generate_conversations",
    "generate_messages",
]
