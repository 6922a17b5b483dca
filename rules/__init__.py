"""The shipped rule packs, term lists, lexicons and profiles (data only; see rules/README.md)."""
