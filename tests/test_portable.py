"""model.zip loads with plain SB3 / sb3-contrib where mtgc is not installed (issue 20)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from stable_baselines3 import SAC

from mtgc_cli.portable import clipped_policy_kwargs

# Loads the model with mtgc's package made unimportable, then acts on observations normalised
# by the run's own statistics: what a plain-SB3 user of the files does.
PLAIN = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "mtgc_cli":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
import gymnasium as gym, gymnasium_robotics, numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
gym.register_envs(gymnasium_robotics)
run = sys.argv[1]
venv = VecNormalize.load(run + "/vecnormalize.pkl", DummyVecEnv([lambda: gym.make("FetchReach-v4")]))
venv.training = False
model = SAC.load(run + "/model.zip", env=venv)
venv.seed(3)
obs = venv.reset()
actions = []
for _ in range(5):
    action, _ = model.predict(obs, deterministic=True)
    actions.append(action[0].tolist())
    obs, *_ = venv.step(action)
print(json.dumps({"actions": actions, "obs": {k: v.tolist() for k, v in venv.reset().items()}}))
"""


def _serialized_mtgc_names(model_zip: Path) -> list[str]:
    data = json.loads(zipfile.ZipFile(model_zip).read("data"))
    return [
        key
        for key, value in data.items()
        if isinstance(value, dict)
        and ":serialized:" in value
        and b"mtgc_cli" in base64.b64decode(value[":serialized:"])
    ]


def test_a_saved_model_loads_and_acts_with_plain_sb3_without_mtgc(tmp_path: Path) -> None:
    # FetchReach trains with normalised observations, so with mtgc's clipping extractor and its
    # HER buffer: both were pickled into model.zip as mtgc classes before.
    done = subprocess.run(
        [sys.executable, "-m", "mtgc_cli.cli.app", "train", "--preset", "fetch-reach", "--timesteps", "1200",
         "--runs-dir", str(tmp_path), "--set", "train.eval_every=600", "--set", "train.eval_episodes=2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = next((tmp_path / "fetch-reach").iterdir())
    for name in ("model.zip", "best_model.zip"):
        assert _serialized_mtgc_names(run / name) == [], name
    checkpoint = next((run / "checkpoints").iterdir())
    assert _serialized_mtgc_names(checkpoint / "model.zip") == []

    plain = subprocess.run(
        [sys.executable, "-c", PLAIN, str(run)], capture_output=True, text=True, check=False
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    acted = json.loads(plain.stdout.strip().splitlines()[-1])
    assert len(acted["actions"]) == 5 and all(len(a) == 4 for a in acted["actions"])

    # mtgc's own load puts its clipping extractor back; on observations inside the clip both
    # act alike, so the plain model is the trained policy, not a re-initialised one.
    ours = SAC.load(run / "model.zip", custom_objects=clipped_policy_kwargs(run / "model.zip", 5.0))
    plain_model = SAC.load(run / "model.zip", custom_objects={"replay_buffer_class": None})
    assert type(ours.policy.actor.features_extractor).__name__ == "ClippedCombinedExtractor"
    obs = {k: np.clip(np.asarray(v, dtype=np.float32), -4.0, 4.0) for k, v in acted["obs"].items()}
    ours_action, _ = ours.predict(obs, deterministic=True)
    plain_action, _ = plain_model.predict(obs, deterministic=True)
    np.testing.assert_allclose(ours_action, plain_action, atol=1e-6)
