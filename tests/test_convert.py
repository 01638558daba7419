"""`rcc-convert` against each tool's documented schema, and TRL's own preference-data functions:

- trl: conversational `prompt` / `chosen` / `rejected` with one image placeholder per frame in `images`; the JSONL
  loads with `datasets`, the saved DatasetDict opens with `load_from_disk`; TRL's `is_conversational`,
  `maybe_apply_chat_template` and its vision DPO collator (`DataCollatorForVisionPreference`, with the tiny
  Qwen2.5-VL processor) take the rows, and `DPOTrainer` trains two steps on the saved dataset (skipped where `trl` is
  not installed);
- llamafactory: the rules of LLaMA-Factory's sharegpt converter (`src/llamafactory/data/converter.py`,
  `SharegptDatasetConverter` with `ranking: true`) and its `dataset_info.json` entry, media resolved against
  the dataset folder as its `_find_medias` does;
- swift: ms-swift's standard RLHF format ("Custom dataset" docs): `messages` ending with the chosen assistant
  turn, `rejected_response`, one `<video>` tag per entry of `videos`, files present;
- bad input stops before anything is written, naming the chain.
"""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from conftest import ENV
from rcc_rank.data.chains import Chain, write_chains
from rcc_rank.training.convert import convert_chains
from rcc_rank.testing.fixtures import write_test_video
from rcc_rank.synthetic.world_data import world_chains


@pytest.fixture(scope='module')
def chain_file(tmp_path_factory):
    "Two synthetic chains (frames only, train) and one with a video file (test split)"
    d = tmp_path_factory.mktemp('convert')
    ws = world_chains(3, length=4, seed=0)
    clip = write_test_video(d/'clip.mp4', n=10, size=(32, 32))
    real = Chain(
        id='clip/0', captions=ws[2].captions, mutations=ws[2].mutations, video=str(clip), meta={'split': 'test'}
    )
    write_chains(ws[:2] + [real], d/'chains.jsonl')
    return d/'chains.jsonl'


def _rows(path): return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _cli(*args):
    exe = Path(sys.executable).parent/'rcc-convert'
    cmd = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, '-c', 'from rcc_rank.training.convert import rcc_convert; rcc_convert()']
    )
    p = subprocess.run(cmd + [str(a) for a in args] + ['--json'], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_trl_schema_and_datasets(chain_file, tmp_path):
    import datasets
    res = convert_chains(chain_file, tmp_path/'trl', to='trl', pairs='all', num_frames=4)
    assert res['rows'] == {'train': 12, 'test': 6}
    for r in _rows(tmp_path/'trl'/'train.jsonl'):
        assert [m['role'] for m in r['prompt']] == ['user'] and r['chosen'][0]['role'] == r['rejected'][0][
            'role'
        ] == 'assistant'
        assert sum(p['type'] == 'image' for p in r['prompt'][0]['content']) == len(r['images']) == 4
        assert all((tmp_path/'trl'/p).is_file() for p in r['images']) and r['chosen_rank'] < r['rejected_rank']
    js = datasets.load_dataset('json', data_files=str(tmp_path/'trl'/'train.jsonl'), split='train')
    assert js.num_rows == 12 and set(js.column_names) >= {'prompt', 'chosen', 'rejected', 'images'}
    dd = datasets.load_from_disk(str(tmp_path/'trl'/'dataset'))
    assert dd['test'].num_rows == 6 and dd['test'][0]['images'][0].size == (32, 32)


def test_trl_own_checks(chain_file, tmp_path):
    pytest.importorskip('trl')
    import datasets
    from trl.data_utils import is_conversational, maybe_apply_chat_template
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference
    from rcc_rank.modeling.models import tiny_model
    convert_chains(chain_file, tmp_path/'trl', to='trl', num_frames=2)
    ds = datasets.load_from_disk(str(tmp_path/'trl'/'dataset'))['train']
    _, proc = tiny_model('qwen2_5_vl')
    row = ds[0]
    assert is_conversational(row)
    text = maybe_apply_chat_template({k: row[k] for k in ('prompt', 'chosen', 'rejected')}, proc)
    assert text['prompt'].count('<|image_pad|>') == 2 and text['chosen'].strip().startswith(
        row['chosen'][0]['content'][0]['text'][:20]
    )
    batch = DataCollatorForVisionPreference(processor=proc)([ds[0], ds[1]])
    assert batch['input_ids'].shape[0] == 4 and batch['pixel_values'].shape[0] > 0   # chosen and rejected of two rows
    assert int(batch['completion_mask'].sum()) > 0
    # and TRL's DPOTrainer trains on the saved dataset as it is (two steps, tiny Qwen2.5-VL, its own reference copy)
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        output_dir=str(tmp_path / 'run'),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy='no',
        activation_checkpointing=False,
        bf16=False,
        disable_tqdm=True,
    )
    tr = DPOTrainer(
        model=tiny_model('qwen2_5_vl')[0],
        ref_model=tiny_model('qwen2_5_vl')[0],
        args=args,
        train_dataset=ds,
        processing_class=proc,
    )
    assert tr.train().global_step == 2
    losses = [h['loss'] for h in tr.state.log_history if 'loss' in h]
    assert len(losses) == 2 and all(abs(x - 0.6931) < 0.01 for x in losses), (
        losses
    )  # log 2 at the start: policy = reference


def _check_llamafactory(folder):
    ("LLaMA-Factory's sharegpt ranking rules, read from its converter, on every row of every dataset in "
     "dataset_info.json")
    info = json.loads((folder/'dataset_info.json').read_text())
    n = 0
    for name, attr in info.items():
        assert attr['formatting'] == 'sharegpt' and attr['ranking'] is True, name
        cols, tags = attr['columns'], attr.get('tags', {})
        role, content = tags.get('role_tag', 'from'), tags.get('content_tag', 'value')
        user, assistant = tags.get('user_tag', 'human'), tags.get('assistant_tag', 'gpt')
        for r in _rows(folder/attr['file_name']):
            msgs = r[cols['messages']]
            assert len(msgs) % 2 == 1, r                                       # a ranking prompt ends with a user turn
            assert all(m[role] == (user if k % 2 == 0 else assistant) for k, m in enumerate(msgs)), r
            for key in ('chosen', 'rejected'):
                assert isinstance(r[cols[key]], dict) and r[cols[key]][role] == assistant and r[cols[key]][content], r
            vids = r[cols['videos']]
            assert sum(m[content].count('<video>') for m in msgs) == len(vids) == 1, r
            assert all(os.path.isfile(os.path.join(folder, v)) for v in vids), vids  # joined to media_dir = dataset_dir
            n += 1
    return n


def test_llamafactory_schema(chain_file, tmp_path):
    res = _cli(chain_file, tmp_path/'lf', '--to', 'llamafactory', '--pairs', 'adjacent', '--json')
    assert res['rows'] == {'train': 6, 'test': 3} and _check_llamafactory(tmp_path/'lf') == 9
    first = _rows(tmp_path/'lf'/'train.jsonl')[0]
    assert not first['videos'][0].startswith('/')                           # frames written under the folder: relative


def test_swift_schema(chain_file, tmp_path):
    convert_chains(chain_file, tmp_path/'sw', to='swift')
    rows = _rows(tmp_path/'sw'/'train.jsonl') + _rows(tmp_path/'sw'/'test.jsonl')
    assert len(rows) == 9
    for r in rows:
        assert [m['role'] for m in r['messages']] == ['user', 'assistant'] and isinstance(r['rejected_response'], str)
        assert r['messages'][1]['content'] != r['rejected_response']
        assert sum(m['content'].count('<video>') for m in r['messages']) == len(r['videos']) == 1
        assert os.path.isabs(r['videos'][0]) and os.path.isfile(r['videos'][0])
    assert rows[-1]['videos'][0] == str((chain_file.parent/'clip.mp4').resolve())   # a video file is passed on


def test_bad_input_names_the_chain(chain_file, tmp_path):
    short = Chain(id='lonely', captions=['A cat sits.'])
    with pytest.raises(ValueError, match="chain 'lonely': 1 caption"): convert_chains([short], tmp_path/'a')
    assert not (tmp_path/'a').exists()
    gone = Chain(id='gone', captions=['A cat sits.', 'A dog sits.'], video=str(tmp_path/'missing.mp4'))
    with pytest.raises(FileNotFoundError, match="chain 'gone': video"): convert_chains([gone], tmp_path/'b', to='swift')
    with pytest.raises(ValueError, match='pairs must be one of'): convert_chains(chain_file, tmp_path/'c', pairs='best')
    convert_chains(chain_file, tmp_path/'d', to='swift')
    with pytest.raises(FileExistsError, match='not empty'): convert_chains(chain_file, tmp_path/'d', to='swift')


def test_cli_bad_chain_is_one_line_exit_2(tmp_path, capsys):
    "The command reports bad input as one line naming the chain, exit status 2, and writes nothing"
    from rcc_rank.training.convert import rcc_convert
    write_chains([Chain(id='lonely', captions=['A cat sits.'])], tmp_path/'bad.jsonl', validate=False)
    with pytest.raises(SystemExit) as e: rcc_convert([str(tmp_path/'bad.jsonl'), str(tmp_path/'out'), '--to', 'trl'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith('rcc-convert: error:') and "chain 'lonely'" in err, err
    assert not (tmp_path/'out').exists()
