"""UCF101's 101 classes by the five action types of the dataset's paper (data, not an experiment).

Soomro, Zamir and Shah, "UCF101: A Dataset of 101 Human Actions Classes From Videos in The
Wild" (CRCV-TR-12-01, 2012) sorts the classes into five types: Human-Object Interaction (20
classes), Body-Motion Only (16), Human-Human Interaction (5), Playing Musical Instruments (10)
and Sports (50). Names are spelt as in the dataset's ``classInd.txt``; match them without
regard to case (the video files spell ``HandstandPushups`` as ``HandStandPushups``).

``python -m trainers.evaluate`` reports the accuracy of each type for a UCF101 build
(``action_groups`` in metrics.json and ``action_groups.png``).
"""
from __future__ import annotations

GROUPS: dict[str, tuple[str, ...]] = {
    "Human-Object Interaction": (
        "ApplyEyeMakeup", "ApplyLipstick", "BlowDryHair", "BrushingTeeth", "CuttingInKitchen",
        "Hammering", "HulaHoop", "JugglingBalls", "JumpRope", "Knitting", "Mixing",
        "MoppingFloor", "Nunchucks", "PizzaTossing", "ShavingBeard", "SkateBoarding",
        "SoccerJuggling", "Typing", "WritingOnBoard", "YoYo",
    ),
    "Body-Motion Only": (
        "BabyCrawling", "BlowingCandles", "BodyWeightSquats", "HandstandPushups",
        "HandstandWalking", "JumpingJack", "Lunges", "PullUps", "PushUps", "RockClimbingIndoor",
        "RopeClimbing", "Swing", "TaiChi", "TrampolineJumping", "WalkingWithDog", "WallPushups",
    ),
    "Human-Human Interaction": (
        "BandMarching", "Haircut", "HeadMassage", "MilitaryParade", "SalsaSpin",
    ),
    "Playing Musical Instruments": (
        "Drumming", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar",
        "PlayingPiano", "PlayingSitar", "PlayingTabla", "PlayingViolin",
    ),
    "Sports": (
        "Archery", "BalanceBeam", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
        "Biking", "Billiards", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke",
        "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "Diving", "Fencing",
        "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing",
        "HammerThrow", "HighJump", "HorseRace", "HorseRiding", "IceDancing", "JavelinThrow",
        "Kayaking", "LongJump", "ParallelBars", "PoleVault", "PommelHorse", "Punch", "Rafting",
        "Rowing", "Shotput", "Skiing", "Skijet", "SkyDiving", "SoccerPenalty", "StillRings",
        "SumoWrestling", "Surfing", "TableTennisShot", "TennisSwing", "ThrowDiscus",
        "UnevenBars", "VolleyballSpiking",
    ),
}


def group_of(class_name: str) -> str | None:
    """The action type of a UCF101 class name (any case), or None for a name UCF101 lacks."""
    return _BY_NAME.get(class_name.lower())


_BY_NAME = {name.lower(): group for group, names in GROUPS.items() for name in names}
