#!/usr/bin/env python3
"""Benchmark frames on demand: 8 frames of a clip by seeking (`video_clip`) vs one sequential pass over every frame.

    python bench/video.py                 # about a minute on 2 cores
    python bench/video.py --gops 12 250   # also the long clip at other keyframe intervals

Writes two H.264 clips with PyAV into a temporary folder: a short one (3 s, 320x240, 30 fps) and a long one (30 s,
640x360, 30 fps, 900 frames), both with a keyframe every `--gop` frames (default 30: one a second, as cameras and
video sites write them; x264's own default, 250, is the worst case for seeking and is reported with `--gops 250`).
For each clip it times `video_clip(path, 8)` (frames on demand) and `video._decode_sequential` (the previous path:
decode every frame, keep 8), median of `--repeats` after one warm-up, and checks the frames are the same.
Prints one JSON object: {"short": {...}, "long": {...}, "speedup_short", "speedup_long", "cpu_speedup_long", "max_abs_diff", "same_indices",
"gop", "by_gop": {gop: speedup}, "load_avg"}; each clip reports frames, size,
old_s, new_s, speedup (wall), old_cpu_s, new_cpu_s, cpu_speedup (process CPU time, all threads: steadier on a shared
machine), max_abs_diff (largest pixel difference, 0..255) and same_indices, and the codec's floor for exact frames:
keyframes, min_decodes (the frames any exact decoder must decode for the sampled ones: from each one's keyframe, every
reference frame up to it, in decode order, and the frame itself) and bound_speedup (one thread decoding all frames /
decoding only those, the most any seeking decoder can gain over a full pass).
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import numpy as np
from rcc_rank.data import video

def write_clip(path, seconds, size, fps=30, gop=30):
    "An H.264 clip of moving, textured content (so inter frames carry real residuals), keyframe every `gop` frames"
    import av
    H, W = size
    yy, xx = np.mgrid[:H, :W]
    with av.open(str(path), mode='w') as out:
        st = out.add_stream('libx264', rate=fps)
        st.width, st.height, st.pix_fmt = W, H, 'yuv420p'
        st.codec_context.gop_size = gop
        st.codec_context.options = {'preset': 'veryfast', 'crf': '23'}
        for t in range(int(seconds * fps)):
            img = np.empty((H, W, 3), np.uint8)
            img[..., 0] = (xx + 3 * t) % 256
            img[..., 1] = (yy * 2 + t) % 256
            img[..., 2] = ((xx ^ yy) + 5 * t) % 256
            x = int(t * (W - 32) / max(seconds * fps - 1, 1))
            img[H // 2 - 16 : H // 2 + 16, x : x + 32] = (230, 30, 30)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format='rgb24')): out.mux(pkt)
        for pkt in st.encode(): out.mux(pkt)
    return path

def timed(fn, repeats):
    "Median wall seconds, median process CPU seconds (all decoder threads) and the last result, after a warm-up"
    fn()   # warm-up: imports, file cache
    ts, cs = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        r = fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return statistics.median(ts), statistics.median(cs), r

def _ref_idc(b:bytes)->int:
    "nal_ref_idc of the first slice NAL unit of an H.264 packet (MP4: 4-byte length prefixes); 0 means no frame refers to it"
    i = 0
    while i + 4 < len(b):
        n, h = int.from_bytes(b[i:i+4], 'big'), b[i+4]
        if h & 31 in (1, 5): return (h >> 5) & 3
        i += 4 + n
    return 3

def floor(path, num_frames, repeats):
    "Frames an exact decoder must decode for the sampled ones, and the speedup over a full pass if it decoded only those"
    import av
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        extra = st.codec_context.extradata
        pk = [p for p in c.demux(st) if p.size]
    order = np.sort([p.pts for p in pk])
    want = set(order[video.uniform_indices(len(pk), num_frames)].tolist())
    need, key = set(), 0
    for j, p in enumerate(pk):
        key = j if p.is_keyframe else key
        if p.pts in want: need |= {i for i in range(key, j + 1) if i == j or _ref_idc(bytes(pk[i]))}
    def run(sel):
        cc = av.CodecContext.create('h264', 'r')
        cc.extradata = extra
        for i in sel: cc.decode(pk[i])
        cc.decode(None)

    t_all = timed(lambda: run(range(len(pk))), repeats)[1]
    t_min = timed(lambda: run(sorted(need)), repeats)[1]
    return dict(keyframes=sum(p.is_keyframe for p in pk), min_decodes=len(need), bound_speedup=round(t_all / t_min, 1))

def compare(path, num_frames, repeats):
    new_s, new_cpu, (frames, meta) = timed(lambda: video.video_clip(str(path), num_frames), repeats)
    old_s, old_cpu, (old, idx, _, n) = timed(
        lambda: video._decode_sequential(str(path), num_frames, None, None), repeats
    )
    diff = int(np.abs(frames.astype(int) - old.astype(int)).max())
    return dict(
        frames=n,
        size=list(old.shape[1:3]),
        old_s=round(old_s, 5),
        new_s=round(new_s, 5),
        speedup=round(old_s / new_s, 2),
        old_cpu_s=round(old_cpu, 5),
        new_cpu_s=round(new_cpu, 5),
        cpu_speedup=round(old_cpu / new_cpu, 2),
        max_abs_diff=diff,
        same_indices=meta.frames_indices == idx.tolist(),
        **floor(path, num_frames, repeats),
    )

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--num-frames', type=int, default=8)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--gop', type=int, default=30, help='keyframe interval of both clips (frames)')
    ap.add_argument(
        '--gops', type=int, nargs='*', default=[], help='also time the long clip at these keyframe intervals'
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        short = compare(write_clip(d/'short.mp4', 3, (240, 320), gop=a.gop), a.num_frames, a.repeats)
        long = compare(write_clip(d/'long.mp4', 30, (360, 640), gop=a.gop), a.num_frames, a.repeats)
        by_gop = {
            g: compare(write_clip(d / f'long{g}.mp4', 30, (360, 640), gop=g), a.num_frames, a.repeats) for g in a.gops
        }
    res = dict(
        num_frames=a.num_frames,
        repeats=a.repeats,
        gop=a.gop,
        short=short,
        long=long,
        speedup_short=short['speedup'],
        speedup_long=long['speedup'],
        max_abs_diff=max([short['max_abs_diff'], long['max_abs_diff'], *[r['max_abs_diff'] for r in by_gop.values()]]),
        same_indices=all([short['same_indices'], long['same_indices'], *[r['same_indices'] for r in by_gop.values()]]),
        cpu_speedup_long=long['cpu_speedup'],
        by_gop={
            g: {
                k: r[k]
                for k in ('old_s', 'new_s', 'speedup', 'cpu_speedup', 'max_abs_diff', 'min_decodes', 'bound_speedup')
            }
            for g, r in by_gop.items()
        },
        load_avg=os.getloadavg()[0],
    )
    print(json.dumps(res))

if __name__ == '__main__': main()
