"""Feature extractors that clip normalised observations at the network's input.

Observation normalisation used to clip in the env wrapper (SB3's ``VecNormalize(clip_obs=...)``),
and SB3 stores ``unnormalize(clip(normalize(obs)))`` for an episode's last observation: with
clip 5 an early lift or a long push was stored up to 0.19 m from where the block really was,
and ``final`` relabeling takes every goal from those rows. mtgc's ``VecNormalize`` therefore
does not clip (the replay buffer keeps the raw observation), and the clip that keeps rare
outliers from saturating the network happens here, on the normalised input only.
"""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import TensorDict


class ClippedCombinedExtractor(CombinedExtractor):
    """SB3's Dict-observation extractor with every input clamped to ``[-clip, clip]`` first."""

    def __init__(self, observation_space: spaces.Dict, clip: float = 5.0) -> None:
        super().__init__(observation_space)
        self.clip = float(clip)

    def forward(self, observations: TensorDict) -> th.Tensor:
        clipped = {key: th.clamp(value, -self.clip, self.clip) for key, value in observations.items()}
        return super().forward(clipped)


class ClippedFlattenExtractor(FlattenExtractor):
    """SB3's flat-observation extractor with the input clamped to ``[-clip, clip]`` first."""

    def __init__(self, observation_space: spaces.Space, clip: float = 5.0) -> None:
        super().__init__(observation_space)
        self.clip = float(clip)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return super().forward(th.clamp(observations, -self.clip, self.clip))


def clipped_extractor(observation_space: spaces.Space) -> type[CombinedExtractor] | type[FlattenExtractor]:
    return ClippedCombinedExtractor if isinstance(observation_space, spaces.Dict) else ClippedFlattenExtractor
