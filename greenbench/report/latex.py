"""Text as LaTeX that pdflatex compiles with no package: every special character and every
non-ASCII character escaped to a macro.

pdflatex reads bytes: a raw ``λ`` or ``×`` in a table is an error ("Unicode character not set
up for use with LaTeX") unless the document loads the right packages. So the escaped text is
pure ASCII. Symbols the tables print (λ, ×, ·, ±, Δ, τ, −, …) become the kernel's math macros
in ``\\ensuremath``; accented Latin letters become accent commands (``é`` → ``\\'{e}``); a
character LaTeX has no kernel macro for is written as its code point, ``{[}U+4E2D{]}``.
``[`` and ``]`` are braced: after a row's ``\\\\`` a bare ``[`` would be read as its optional
argument. ``--`` is broken into ``-{}-`` (a dash ligature otherwise).
"""

from __future__ import annotations

import re
import unicodedata

from greenbench.errors import TERMINAL_UNSAFE

_CONTROL = re.compile(TERMINAL_UNSAFE.pattern + "+")

_ASCII = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
    "|": r"\textbar{}",
    "[": "{[}",
    "]": "{]}",
}
_MATH = {
    "λ": "lambda", "Λ": "Lambda", "α": "alpha", "β": "beta", "γ": "gamma", "Γ": "Gamma",
    "δ": "delta", "Δ": "Delta", "ε": "epsilon", "η": "eta", "θ": "theta", "Θ": "Theta",
    "κ": "kappa", "μ": "mu", "µ": "mu", "ν": "nu", "π": "pi", "Π": "Pi", "ρ": "rho",
    "σ": "sigma", "Σ": "Sigma", "τ": "tau", "φ": "phi", "Φ": "Phi", "χ": "chi", "ψ": "psi",
    "ω": "omega", "Ω": "Omega",
    "×": "times", "·": "cdot", "⋅": "cdot", "±": "pm", "÷": "div", "−": "-", "≤": "leq",
    "≥": "geq", "≠": "neq", "≈": "approx", "∼": "sim", "→": "rightarrow", "←": "leftarrow",
    "↑": "uparrow", "↓": "downarrow", "∞": "infty", "°": "^\\circ", "²": "^2", "³": "^3",
    "¹": "^1", "√": "surd", "∈": "in", "★": "star", "◆": "diamond",
}  # fmt: skip
_TEXT = {
    "—": r"\textemdash{}", "–": r"\textendash{}", "…": r"\ldots{}", "‘": r"\textquoteleft{}",
    "’": r"\textquoteright{}", "“": r"\textquotedblleft{}", "”": r"\textquotedblright{}",
    "\u00a0": r"\nobreakspace{}", "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}", "ø": r"\o{}", "Ø": r"\O{}",
    "œ": r"\oe{}", "Œ": r"\OE{}", "ł": r"\l{}", "Ł": r"\L{}", "§": r"\S{}", "¶": r"\P{}",
    "©": r"\copyright{}", "•": r"\textbullet{}", "€": "EUR", "£": r"\pounds{}",
}  # fmt: skip
# combining marks of NFD, as accent commands of the LaTeX kernel
_ACCENTS = {
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
    "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c",
    "\u0328": "k",
}  # fmt: skip


def _accented(char: str) -> str | None:
    """``é`` as ``\\'{e}``: an ASCII letter with kernel accents, else None."""
    decomposed = unicodedata.normalize("NFD", char)
    base, marks = decomposed[0], decomposed[1:]
    if not base.isascii() or not base.isalpha() or not marks or any(m not in _ACCENTS for m in marks):
        return None
    out = base
    for mark in marks:
        out = f"\\{_ACCENTS[mark]}{{{out}}}"
    return out


def _char(char: str) -> str:
    if char in _ASCII:
        return _ASCII[char]
    if char.isascii():
        return char
    if char in _MATH:
        math = _MATH[char]
        return "\\ensuremath{" + (math if math[0] in "-^" else "\\" + math) + "}"
    if char in _TEXT:
        return _TEXT[char]
    return _accented(char) or f"{{[}}U+{ord(char):04X}{{]}}"


def latex_escape(text: str) -> str:
    """``text`` on one line as pure-ASCII LaTeX that prints it: special characters and every
    non-ASCII character escaped (module docstring), control characters folded to spaces."""
    escaped = "".join(_char(c) for c in _CONTROL.sub(" ", text))
    return re.sub("-(?=-)", "-{}", escaped)  # "--" and "---" would print as dashes
