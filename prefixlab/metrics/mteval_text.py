r"""Text normalisation of mteval-v13a as the E2E script runs it: ASCII-only lowercasing + 13a tokens.

mteval-v13a-sig.pl (the script behind the official E2E BLEU and NIST) lowercases with
``tr/[A-Z]/[a-z]/``, i.e. ASCII letters only, and then applies the 13a tokenization rules.
sacrebleu's ``lowercase=True`` uses Python's ``str.lower()``, which also folds non-ASCII capitals
(``É`` -> ``é``); so we lowercase ASCII ourselves and hand sacrebleu already-lowercased text with
``lowercase=False``. Its ``Tokenizer13a`` reproduces mteval's regular expressions exactly.

Before tokenizing, mteval collapses every run of whitespace (newlines included) of the SGML input to
one space (``s/[\s\n\r]+/ /g``); `mteval_normalize` does the same, so that e.g. ``"-\n"`` inside an
output is not joined the way sacrebleu's tokenizer would join it.
"""

from __future__ import annotations

import re

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

__all__ = ["ascii_lower", "mteval_normalize", "mteval_tokenize"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_WHITESPACE = re.compile(r"\s+")
_TOKENIZER_13A = Tokenizer13a()


def ascii_lower(text: str) -> str:
    """Lowercase A-Z only, leaving every non-ASCII character untouched (Perl ``tr/[A-Z]/[a-z]/``)."""
    return text.translate(_ASCII_LOWER)


def mteval_normalize(text: str) -> str:
    """Collapse whitespace runs to one space and lowercase A-Z, as mteval does before tokenizing."""
    return ascii_lower(_WHITESPACE.sub(" ", text))


def mteval_tokenize(text: str) -> list[str]:
    """Tokens of ``text`` exactly as mteval-v13a (default, case-insensitive) scores them."""
    return _TOKENIZER_13A(mteval_normalize(text).rstrip()).split()
