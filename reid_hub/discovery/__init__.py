"""Discovery: the individuals of an unlabelled collection, with people in the loop.

Modules: `collection` (read a folder or table), `graph` (candidate pairs and their neighbourhood-agreement
scores), `local_evidence` (verified local matches of candidate pairs as P(same)), `constraints` (must / cannot
links from structure and answers), `grouping` (constrained average linkage), `questions` (which pair to ask),
`answers` (the answer log with audit: pair answers and whole-group actions), `state` (`GroupState`: the grouping,
pair and group questions, answers and the snapshot, without images or model), `folder` (a discovery folder opened
for answering from its snapshot), `review_feed` (a gallery's review decisions as answers), `adapter` (what the
answers teach the embedding), `session` (the `Discovery` object: `GroupState` plus the embeddings' graph and
adapter), `simulate` (a simulated reviewer with a cost model, for evaluation), `question_pictures` (the pictures of a
question), `run` (the `reid-hub discover` flow and its output folder).

The names below load on first use, so that answering from a folder imports neither torch nor the matchers.
"""
from __future__ import annotations

from ..lazy import lazy_names

_LAZY = {"AnswerLog": "answers", "Constraints": "constraints", "Discovery": "session",
         "DiscoveryConfig": "session", "load_collection": "collection", "simulate_reviewer": "simulate",
         "GroupState": "state"}


__getattr__ = lazy_names(__name__, _LAZY, globals())


__all__ = ["AnswerLog", "Constraints", "Discovery", "DiscoveryConfig", "GroupState", "load_collection",
           "simulate_reviewer"]
