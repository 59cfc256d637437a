"""Scripted experts for the Fetch envs: proportional controllers on positions in the observation.

Each expert maps one observation to one action and keeps no state between steps: which phase it is
in (go above the block, descend, close, carry) follows from where the gripper, the block and the
fingers are. A stateless expert is a function of the observation, which is exactly what behaviour
cloning can learn, and it recovers by itself when the block slips.

Fetch observation (25 values; FetchReach has only the first three and the gripper): gripper
position ``[0:3]``, block position ``[3:6]``, block relative to gripper ``[6:9]``, finger joints
``[9:11]``, then rotations and velocities. Action: ``[dx, dy, dz]`` in units of 5 cm per step
(the env scales by 0.05) and the fingers' command (+1 open, -1 close).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The env moves the gripper by 5 cm per unit of action.
_STEP = 0.05
# Gain of the position controller: the fraction of the remaining distance commanded per step.
# Below 1 it settles without overshoot through the mocap's lag.
_GAIN = 1.0
_OPEN, _CLOSE = 1.0, -1.0
# Finger joints (summed) above this are open wider than the 5 cm block; a grasp stops them near it.
_CLOSED_ON_BLOCK = 0.055
# The gripper hovers this far above the block before it descends, so it does not knock it over.
_HOVER = 0.06
# Horizontal (xy) and vertical tolerance within which the gripper counts as at the block.
_XY_TOL = 0.012
_Z_TOL = 0.01


def _move(grip: np.ndarray, target: np.ndarray, gain: float = _GAIN) -> np.ndarray:
    """(3,) action moving the gripper towards ``target``, clipped to the action bounds."""
    return np.clip(gain * (target - grip) / _STEP, -1.0, 1.0)


def _action(move: np.ndarray, fingers: float) -> np.ndarray:
    return np.append(move, fingers).astype(np.float32)


def reach(obs: dict[str, Any]) -> np.ndarray:
    """Move the gripper to the goal (FetchReach, and FetchTasks' reach task)."""
    grip = np.asarray(obs["observation"][:3])
    return _action(_move(grip, np.asarray(obs["desired_goal"])), _CLOSE)


def pick_and_place(obs: dict[str, Any]) -> np.ndarray:
    """Grasp the block from above and carry it to the goal (in the air or on the table).

    Phases, decided from the observation alone: above the block (hover height) with fingers open;
    down to the block; close until the fingers stop on it; carry to the goal with fingers closed.
    """
    o = np.asarray(obs["observation"])
    grip, block, fingers = o[0:3], o[3:6], float(o[9] + o[10])
    goal = np.asarray(obs["desired_goal"])
    rel = block - grip
    aligned = np.linalg.norm(rel[:2]) < _XY_TOL
    at_block = aligned and abs(rel[2]) < _Z_TOL
    # Held: fingers closed on a block between them. Looser than "at the block": a carried block
    # lags the gripper by a centimetre or two, and opening the fingers then would drop it.
    if fingers < _CLOSED_ON_BLOCK and np.linalg.norm(rel[:2]) < 2 * _XY_TOL and abs(rel[2]) < 3 * _Z_TOL:
        return _action(_move(grip, goal), _CLOSE)  # holding it: carry
    if at_block:
        return _action(np.zeros(3), _CLOSE)  # around it: close
    if aligned and grip[2] > block[2]:
        return _action(_move(grip, block), _OPEN)  # above it: descend
    hover = block + np.array([0.0, 0.0, _HOVER])
    if np.linalg.norm(rel[:2]) < 0.03 and grip[2] < block[2] + 0.5 * _HOVER:
        # Beside the block and low: rise first, or the fingers would sweep it away.
        return _action(_move(grip, grip + np.array([0.0, 0.0, _HOVER])), _OPEN)
    return _action(_move(grip, hover), _OPEN)


# Where the gripper stands behind the block to push it: block half-width (2.5 cm) plus the
# gripper's half-width and a margin.
_BEHIND = 0.055
# The push stops when the block is this close to the goal (success is within 5 cm): pushing on
# would slide it past.
_PUSH_DONE = 0.02


def push(obs: dict[str, Any]) -> np.ndarray:
    """Push the block along the table to the goal with the closed gripper (FetchPush).

    The gripper rises to hover height, travels to a point behind the block on the line from the
    goal through the block, descends to the block's height and pushes along that line, slowing
    down near the goal; if the block turns off the line, the gripper lines up again.
    """
    o = np.asarray(obs["observation"])
    grip, block = o[0:3], o[3:6]
    goal = np.asarray(obs["desired_goal"])
    to_goal = goal[:2] - block[:2]
    distance = float(np.linalg.norm(to_goal))
    if distance < _PUSH_DONE:
        return _action(np.zeros(3), _CLOSE)
    direction = to_goal / distance
    offset = grip[:2] - block[:2]
    along = float(offset @ direction)  # negative: behind the block
    across = float(offset @ np.array([-direction[1], direction[0]]))
    behind = block[:2] - _BEHIND * direction
    low = grip[2] < block[2] + 0.02
    if along < -0.02 and abs(across) < 0.012 and low:
        # In place: push, aiming the gripper where it stands when the block is at the goal, at
        # a speed that falls with the distance left so the block does not slide past.
        target = np.append(goal[:2] - _BEHIND * direction, block[2])
        return _action(_move(grip, target, gain=0.5), _CLOSE)
    if np.linalg.norm(grip[:2] - behind) < 0.01:
        return _action(_move(grip, np.append(behind, block[2])), _CLOSE)  # descend behind it
    if grip[2] < block[2] + 0.8 * _HOVER:
        # Rise straight up before travelling, so the fingers never sweep the block along.
        return _action(_move(grip, np.append(grip[:2], block[2] + _HOVER)), _CLOSE)
    return _action(_move(grip, np.append(behind, block[2] + _HOVER)), _CLOSE)
