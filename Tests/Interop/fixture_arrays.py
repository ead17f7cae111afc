"""Reading a fixture's stored arrays: NAME.KIND.npy, or NAME.KIND_0.npy, NAME.KIND_1.npy... in order."""
import glob
import os

import numpy as np


def arrays(folder, name, kind):
    single = os.path.join(folder, f"{name}.{kind}.npy")
    if os.path.exists(single):
        return [np.load(single)]
    return [np.load(p) for p in sorted(glob.glob(os.path.join(folder, f"{name}.{kind}_*.npy")),
                                       key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))]
