"""What several test files share: the repository root, the environment for the subprocesses they start, the
two-process launch and the captions their chains are made from. Test files import these names
(`from conftest import ENV, CAPTIONS`)."""
import os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# offline, and one thread per process: the tiny models gain nothing from more, and a shared 2-core CI box with
# oversubscribed OpenMP threads runs them 20x slower
ENV = dict(
    os.environ,
    HF_HUB_OFFLINE='1',
    TRANSFORMERS_OFFLINE='1',
    HF_DATASETS_OFFLINE='1',
    TOKENIZERS_PARALLELISM='false',
    OMP_NUM_THREADS='1',
    MPLBACKEND='Agg',
    PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''),
)

# two CPU processes under `accelerate launch` (the data-parallel tests); append the script or `-m module` and its args
LAUNCH_TWO = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
              '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']

CAPTIONS = [
    "A man in a red shirt throws two yellow balls to a small brown dog on the green grass.",
    "Three children in blue coats walk slowly past a large white car on a wet street.",
    "A woman with a black hat pours hot coffee into a white cup, then she sits on a wooden chair.",
    "Two girls in green dresses ride red bicycles quickly down a long hill near a small house.",
    "An old man opens a brown door and carries a heavy box into a dark room.",
    "A tall boy kicks a white ball across a wide field while two dogs run behind him.",
    "A black cat jumps onto a wooden table in the kitchen and knocks over a small glass.",
    "A chef in a white apron chops green onions, then stirs the soup in a large pot.",
    "A girl in a pink dress dances on a stage while the audience claps.",
    "Two cyclists in yellow jackets ride along a wet road past a red bus.",
]
