"""Ordinary community chat, the benign part of the benchmarks' message mixes (shared by both)."""

CHATTER = [
    "good morning everyone, how was your weekend?", "thanks for the tips, really helpful 🙏",
    "anyone going to the meetup on saturday?", "my dog kept me up all night lol",
    "the weather is awful again", "welcome to the group, glad you found us!",
    "bonjour à tous, belle journée", "goedemorgen allemaal, lekker weer vandaag",
    "guten Morgen zusammen, wie geht's euch?", "buenos días grupo, ánimo a todos",
    "walked 10k steps today, proud of myself", "does anyone have a good soup recipe?",
    "my appointment got moved to next week again", "feeling a bit better today",
]
