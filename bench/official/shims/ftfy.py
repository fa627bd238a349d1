"""Stand-in for ftfy (not packaged in Debian), used only when the real one is missing.

The official tokenizer calls ftfy.fix_text(text) to repair mojibake before BPE. The texts
it sees here are class names, attribute words and "X" placeholders in plain ASCII, which
fix_text returns unchanged, so the identity gives the same tokens and costs no more time.
"""


def fix_text(text, *args, **kwargs):
    return text
