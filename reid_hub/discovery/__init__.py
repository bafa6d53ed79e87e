"""Discovery: the individuals of an unlabelled collection, with people in the loop.

Modules: `collection` (read a folder or table), `graph` (candidate pairs and their neighbourhood-agreement
scores), `local_evidence` (verified local matches of candidate pairs as P(same)), `constraints` (must / cannot
links from structure and answers), `grouping` (constrained average linkage), `questions` (which pair to ask),
`answers` (the answer log with audit), `review_feed` (a gallery's review decisions as answers), `adapter` (what
the answers teach the embedding), `session` (the `Discovery` object tying them together), `simulate` (a
simulated reviewer for evaluation), `pair_picture` (the two images of a question with their matches), `run` (the
`reid-hub discover` flow and its output folder).
"""
from .answers import AnswerLog
from .collection import load_collection
from .constraints import Constraints
from .session import Discovery, DiscoveryConfig
from .simulate import simulate_reviewer

__all__ = ["AnswerLog", "Constraints", "Discovery", "DiscoveryConfig", "load_collection", "simulate_reviewer"]
