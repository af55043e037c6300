"""The shared answer extractor on replies shaped like real model output.

REPLIES is kept as a module-level table so it can be quoted: (reply, options, expected letter or None).
"""

import pytest

from latentomni.data.answers import extract_choice, parse_choice

SCENE = [
    "A. A man walks a dog",
    "B. A woman rides a bike",
    "C. Two children play football",
    "D. A car stops at the light",
]
COUNT = ["A. 2", "B. 3", "C. 4", "D. 5"]
NUMBERS = ["A. 1", "B. 2", "C. 3", "D. 4"]
LATENT = "<Unified_Latent>[40 latents]</Unified_Latent>"

REPLIES = [
    # \boxed{} comes first, and the last box wins
    ("\\boxed{B}", SCENE, "B"),
    ("The bike passes just as the bell rings, so the answer is \\boxed{C}.", SCENE, "C"),
    ("A man walks into frame. I think the woman on the bike matters more. \\boxed{B}", SCENE, "B"),
    (f"{LATENT} The high tone sounds exactly when the car halts. {LATENT} \\boxed{{D}}", SCENE, "D"),
    ("First guess: \\boxed{A}. Wait, re-checking the audio around 0:12... \\boxed{C}", SCENE, "C"),
    ("\\boxed{(B)}", SCENE, "B"),
    ("So the final answer is \\boxed{B. A woman rides a bike}", SCENE, "B"),
    ("\\boxed{Two children play football}", SCENE, "C"),
    ("The kids are the ones shouting. \\boxed{two CHILDREN play Football}", SCENE, "C"),
    ("\\boxed{b}", SCENE, "B"),
    ("$\\boxed{\\text{D}}$", SCENE, "D"),
    ("A car stops at the light, so the dog startles. Final answer: \\boxed{A}", SCENE, "A"),
    ("The answer is \\boxed{C}. Answer: B", SCENE, "C"),
    # explicit statements
    ("The answer is C.", SCENE, "C"),
    ("Answer: D", SCENE, "D"),
    ("After listening again, the correct option is (A)", SCENE, "A"),
    ("**Answer:** b", SCENE, "B"),
    ("After the whistle blows, option C is correct.", SCENE, "C"),
    ("The man is running. Therefore the answer is: (d)", SCENE, "D"),
    ("ANSWER: C", SCENE, "C"),
    ("I think the answer is a woman rides a bike.", SCENE, "B"),  # lowercase article, not option A
    ("Option A is wrong. Option B shows a woman on a bike, matching the audio. So B.", SCENE, "B"),
    # replies that are an answer
    ("B", SCENE, "B"),
    ("(C)", SCENE, "C"),
    ("D. A car stops at the light", SCENE, "D"),
    # option text only
    ("A woman rides a bike.", SCENE, "B"),  # a first-capital parser would say A
    ("There are 3 boats moored by the shore.", COUNT, "B"),
    # unreadable: None, never a guessed letter
    ("I cannot determine this from the video.", SCENE, None),
    ("", SCENE, None),
    ("Both A and B seem plausible.", SCENE, None),
    ("The answer is E.", SCENE, None),  # not an option
    ("\\boxed{}", SCENE, None),
    ("In the video a man walks a dog while a car stops at the light.", SCENE, None),  # two options
    (f"{LATENT}{LATENT}", SCENE, None),
    ("I counted 2 boats at first, then 4 once the camera panned.", COUNT, None),
    ("Answer: 12", COUNT, None),
    ("So A man walks away.", SCENE, None),
    # numeric options: a number counts when it is stated as the answer, not when it merely occurs
    ("\\boxed{2}", NUMBERS, "B"),
    ("The answer is 2", NUMBERS, "B"),
    ("The answer is 2.", NUMBERS, "B"),
    ("2", NUMBERS, "B"),
    ("Answer: 3 people", NUMBERS, "C"),
    ("I can see 4 people waving.", NUMBERS, "D"),
    ("There are 3.", NUMBERS, "C"),
    ("At 2:42 the woman speaks.", NUMBERS, None),  # a time, not option B
    ("Segment 1. low tone", NUMBERS, None),  # a label, not option A
    ("Segment 1 has the low tone.", NUMBERS, None),
    ("At 2 seconds the woman speaks.", NUMBERS, None),
    ("The tone rises 1.5 octaves.", NUMBERS, None),
    ("Between 1-2 people are visible.", NUMBERS, None),
    ("The 1st speaker is a woman.", NUMBERS, None),
    ("Option 2 mentions a dog.", NUMBERS, None),
    ("The answer is at 2:42.", NUMBERS, None),  # stated, but no whole number that is an option
    ("3 people wave at 0:02. The woman speaks at the end.", NUMBERS, None),  # not in the concluding sentence
    ("A woman rides a bike. Then the clip ends on a wide shot.", SCENE, None),  # mentioned, not concluded
]


@pytest.mark.parametrize(("reply", "options", "expected"), REPLIES)
def test_extract_choice(reply, options, expected):
    assert extract_choice(reply, options) == expected


def test_table_is_large_and_covers_failures():
    assert len(REPLIES) >= 25
    assert sum(expected is None for *_, expected in REPLIES) >= 5


def test_parse_choice_names_the_rule():
    assert parse_choice("\\boxed{B}", SCENE).method == "boxed"
    assert parse_choice("Answer: B", SCENE).method == "explicit"
    assert parse_choice("B.", SCENE).method == "bare"
    assert parse_choice("A woman rides a bike.", SCENE).method == "option_text"
    assert parse_choice("no idea", SCENE) == parse_choice("", SCENE)
    assert parse_choice("no idea", SCENE).method is None


def test_unparseable_box_falls_through_to_explicit_statement():
    assert extract_choice("Answer: C. \\boxed{see above}", SCENE) == "C"
