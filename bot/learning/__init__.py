"""The learning loop: officers' reviewed corrections (the console's NLU export) checked against
the domain, the held-out evaluation sets and the existing training data, then merged into
`nlu/reviewed.yml` for the next training round.
"""
