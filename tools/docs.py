#!/usr/bin/env python3
"""Offline docs tools.

    python tools/docs.py readme [--check]     README.md from index.ipynb
    python tools/docs.py quickstart N         print README's N-th quick-start command
    python tools/docs.py html [--out _site]   the docs site as static HTML, for tests and local preview
    python tools/docs.py demo [--quick]       rerun the demo: nbs/demo/ (results, plots, quick fingerprint), its page, README.md

Quarto (what `nbdev_readme`/`nbdev_docs` call) is not installable everywhere, so this runs nbdev's own
notebook processors (the ones Quarto's build is fed with) and converts the result with nbconvert.
The GitHub deploy workflow still builds the published site with Quarto. The `html` build needs no
network, in the build or in the browser: math is turned into MathML while building (`latex2mathml`), which
the browser draws itself, so pages load no script at all. Preview with `python -m http.server -d _site`.
"""
import argparse, html, os, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def processed_nb(path):
    "Read a notebook and run nbdev's docs processors over it (as `nbdev_proc_nbs` does)"
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    from fastcore.xtras import working_directory
    nb = read_nb(path)
    with working_directory(ROOT/'nbs'): FilterDefaults()(nb)
    return nb

def split_frontmatter(md):
    "(dict of front matter, rest) from a Markdown string that may open with a YAML block"
    import yaml
    m = re.match(r'\s*---\n(.*?)\n---\n', md, re.S)
    if not m: return {}, md
    return yaml.safe_load(m.group(1)) or {}, md[m.end():]

def nb_markdown(path):
    "Markdown of a processed notebook (front matter turned into a title and description)"
    from nbconvert import MarkdownExporter
    from nbformat import from_dict
    nb = processed_nb(path)
    d = from_dict({'cells': [dict(c) for c in nb.cells], 'metadata': dict(nb.get('metadata', {})),
                   'nbformat': 4, 'nbformat_minor': 5})
    for c in d.cells:
        c.setdefault('metadata', {})
        if c.cell_type == 'code' and re.search(r'^#\|\s*echo:\s*false', c.source, re.M):
            c['metadata']['transient'] = {'remove_source': True}   # as Quarto does: the output without its code
        if c.cell_type == 'code':
            c.setdefault('execution_count', None)
            # images stay on the docs site; the README is text only (no generated image files in the repo)
            c['outputs'] = [
                o for o in c.get('outputs', []) if not any(k.startswith('image/') for k in o.get('data', {}))
            ]
            for o in c['outputs']:   # execnb keeps multi-line values as lists of lines; nbconvert wants strings
                if isinstance(o.get('text'), list): o['text'] = ''.join(o['text'])
                for k, v in o.get('data', {}).items():
                    if isinstance(v, list): o['data'][k] = ''.join(v)
    d.metadata.setdefault('language_info', {'name': 'python'})
    md, _ = MarkdownExporter(exclude_raw=False).from_notebook_node(d)
    fm, body = split_frontmatter(md.lstrip())
    head = f"# {fm.get('title', Path(path).stem)}\n\n"
    if fm.get('description'): head += f"> {fm['description']}\n\n"
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return head + body

def quickstart(n):
    "The n-th command (1-based) of README.md's quick-start block, verbatim (no imports: runs before install)"
    md = (ROOT/'README.md').read_text()
    m = re.search(r'## Quick start.*?```sh\n(.*?)```', md, re.S)
    if not m: raise SystemExit('README.md has no quick-start ```sh block')
    cmds = [l for l in m.group(1).splitlines() if l.strip() and not l.lstrip().startswith('#')]
    return cmds[n-1]

def readme(check=False):
    "Write README.md from index.ipynb; with `check`, exit 1 if the committed README differs"
    new = re.sub(
        r'\]\(demo/', '](nbs/demo/', nb_markdown(ROOT / 'index.ipynb')
    )  # the page sits in nbs/, the README at the root
    out = ROOT/'README.md'
    if check:
        old = out.read_text() if out.exists() else ''
        if old != new:
            print('README.md is out of date with index.ipynb: run `python tools/docs.py readme`', file=sys.stderr)
            return 1
        print('README.md matches index.ipynb')
        return 0
    out.write_text(new)
    print(f'wrote {out}')
    return 0

# --- html: the offline site -------------------------------------------------------------------------

def sidebar_pages():
    "[(section, notebook path)] in `nbs/sidebar.yml` order (notebooks that exist), then any notebook it misses"
    import yaml
    sb = yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())['website']['sidebar']['contents']
    listed = []
    def walk(items, section):
        for it in items:
            if isinstance(it, str): listed.append((section, it))
            elif isinstance(it, dict) and 'section' in it: walk(it.get('contents', []), it['section'])
            elif isinstance(it, dict) and 'href' in it: listed.append((section, it['href']))
    walk(sb, None)
    out, seen = [], set()
    for sec, f in listed:
        p = ROOT/'nbs'/f
        if p.exists() and p.name not in seen:
            out.append((sec, p))
            seen.add(p.name)
    rest = sorted(
        p
        for p in (ROOT / 'nbs').rglob('*.ipynb')
        if p.name not in seen and not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts)
    )
    return out + [('More', p) for p in rest]

def page_name(path)->str:
    "The page a notebook becomes, as nbdev names it for Quarto (`05_losses.ipynb` -> `losses.html`)"
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(path)).name

def _sidebar_html(pages, current:str)->str:
    "The sidebar's HTML: sections in order, the current page marked"
    out, sec = ['<a class="rcc-home" href="index.html">rcc-rank</a>', '<ul>'], None
    for section, title, name in pages:
        if name == 'index.html': continue
        if section != sec:
            out.append(f'<li class="rcc-section">{html.escape(section or "")}</li>')
            sec = section
        cls = ' class="active" aria-current="page"' if name == current else ''
        out.append(f'<li><a href="{name}"{cls}>{html.escape(title)}</a></li>')
    return '\n'.join(out + ['</ul>'])

def _directives(src:str)->tuple[dict, str]:
    "Quarto cell options left after nbdev's processors (`#| echo: false`), and the source without them"
    opts, lines = {}, src.splitlines()
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith('#|'):
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*)', lines[i])
        if m: opts[m.group(1).lower()] = m.group(2).strip().lower()
        i += 1
    return opts, '\n'.join(lines[i:])

def _join(v): return ''.join(v) if isinstance(v, list) else v

_PANDOC_LINK = re.compile(r'\[([^\]\n]+)\]\(([^)\s]+)\)\{((?:\s*[\w-]+="[^"]*")+)\s*\}')

def _pandoc_links(md:str)->str:
    "Pandoc's `[text](url){key=\"value\"}` (show_doc's source links) as an HTML link; mistune does not know the syntax"
    return _PANDOC_LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}" {m.group(3).strip()}>{m.group(1)}</a>', md)

def _nb_node(nb):
    "An nbformat node from nbdev's processed notebook, with Quarto's cell options applied"
    from nbformat import from_dict
    cells = []
    for c in nb.cells:
        d = {k: v for k, v in dict(c).items() if not k.endswith('_')}
        d['source'] = src = _join(d.get('source', ''))
        d['metadata'] = dict(d.get('metadata', {}))
        if c.cell_type == 'raw' and src.lstrip().startswith('---'): continue  # front matter: shown as the page title
        if c.cell_type == 'markdown': d['source'] = _pandoc_links(src)
        if c.cell_type == 'code':
            opts, d['source'] = _directives(src)
            if opts.get('include') == 'false': continue
            if opts.get('echo') == 'false': d['metadata']['transient'] = {'remove_source': True}
            outs = [] if opts.get('output') == 'false' else d.get('outputs', [])
            d['outputs'] = []
            for o in outs:
                o = dict(o)
                if 'text' in o: o['text'] = _join(o['text'])
                if 'data' in o:
                    o['data'] = {
                        k: _pandoc_links(_join(v)) if k == 'text/markdown' else _join(v) for k, v in o['data'].items()
                    }
                o.setdefault('metadata', {}) if o.get('output_type') in ('display_data', 'execute_result') else None
                d['outputs'].append(o)
            d.setdefault('execution_count', None)
            if not d['source'].strip() and not d['outputs']: continue
        cells.append(d)
    md = {k: v for k, v in dict(nb.get('metadata', {})).items() if k != 'widgets'}  # no live widget state offline
    return from_dict({'cells': cells, 'metadata': md, 'nbformat': 4, 'nbformat_minor': 5})

def _quarto_id(s:str)->str: return re.sub(r'[^\w.\-]', '', s.strip().lower().replace(' ', '-'))

def _fix_links(page:str, names:dict)->str:
    "Point notebook links and links into the published site at the local pages; add Quarto-style heading ids"
    from nbdev.config import get_config
    cfg = get_config()
    site = (cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/').replace('//', '/').replace(':/', '://')
    def href(m):
        q, url = m.group(1), m.group(2)
        if url.startswith(site): url = url[len(site):] or 'index.html'
        m2 = re.match(r'(?![a-z]+:)([^#?]*?)([^/#?]+)\.ipynb([#?].*)?$', url)
        if m2: url = names.get(m2.group(2) + '.ipynb', page_name(m2.group(2) + '.ipynb')) + (m2.group(3) or '')
        return f'href={q}{url}{q}'
    page = re.sub(r'href=(["\'])(.*?)\1', href, page)
    def heading(m):
        qid = _quarto_id(html.unescape(m.group(2)))
        extra = f'<span id="{qid}"></span>' if qid and qid != m.group(2) else ''
        return m.group(0) + extra
    return re.sub(r'<h([1-6]) id="([^"]+)">', heading, page)

_VARIANTS = {'script': 'SCRIPT', 'double-struck': 'DOUBLE-STRUCK', 'fraktur': 'FRAKTUR', 'bold': 'BOLD',
             'bold-italic': 'BOLD ITALIC', 'sans-serif': 'SANS-SERIF', 'monospace': 'MONOSPACE'}
_LEGACY = {'SCRIPT': 'SCRIPT', 'DOUBLE-STRUCK': 'DOUBLE-STRUCK', 'FRAKTUR': 'BLACK-LETTER'}

def _styled_letter(m):
    "`<mi mathvariant=...>L</mi>` as the Unicode mathematical letter (browsers' MathML ignores most mathvariants)"
    import unicodedata
    variant, ch = _VARIANTS.get(m.group(1)), m.group(2)
    if not variant or not (ch.isascii() and ch.isalpha()): return m.group(0)
    case = 'CAPITAL' if ch.isupper() else 'SMALL'
    for name in (f'MATHEMATICAL {variant} {case} {ch.upper()}', f'{_LEGACY.get(variant, "-")} {case} {ch.upper()}'):
        try: return f'<mi mathvariant="normal">{unicodedata.lookup(name)}</mi>'
        except KeyError: pass
    return m.group(0)

def tex2mathml(tex:str, display:str='inline')->str:
    "MathML for a TeX formula; a visible `rcc-math-error` span (and a warning) where it cannot be converted"
    from latex2mathml.converter import convert
    tex = tex.strip().replace('\\|', '\\Vert ')  # latex2mathml leaves `\|` as text
    try: out = convert(tex, display=display)
    except Exception as e:
        print(f'docs html: cannot convert math {tex!r}: {type(e).__name__}: {e}', file=sys.stderr)
        return f'<code class="rcc-math-error" title="{html.escape(str(e))}">{html.escape(tex)}</code>'
    return re.sub(r'<mi mathvariant="([\w-]+)">(\w)</mi>', _styled_letter, out)

def _exporter(**kw):
    "nbconvert's HTML exporter, with math rendered to MathML at build time"
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    class MathMLRenderer(IPythonRenderer):
        def block_math(self, body): return tex2mathml(body, 'block')
        def inline_math(self, body): return tex2mathml(body, 'inline')
        def latex_environment(self, name, body): return tex2mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', 'block')
    class Exporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get('cell', {})
            path = context.get('resources', {}).get('metadata', {}).get('path', '')
            r = MathMLRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=self.embed_images,
                               path=path, anchor_link_text=self.anchor_link_text,
                               exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
            return MarkdownWithMath(renderer=r).render(source)
    return Exporter(template_name='rcc', extra_template_basedirs=[str(ROOT/'tools'/'docs_templates')], **kw)

def render_page(path, pages, names):
    "(output file name, HTML) of one notebook as a docs page"
    path = Path(path)
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # the checkout's rcc_rank, for show_doc
    nb = processed_nb(path)
    fm = getattr(nb, 'frontmatter_', {}) or {}
    name = page_name(path)
    node = _nb_node(nb)
    title = fm.get('title') or path.stem
    node.metadata['title'] = title if name == 'index.html' else f'{title} – rcc-rank'
    ex = _exporter(exclude_input_prompt=True, exclude_output_prompt=True)
    res = {'rcc_root': '', 'rcc_sidebar': _sidebar_html(pages, name), 'rcc_title': title,
           'rcc_description': fm.get('description', ''), 'metadata': {'name': path.stem, 'path': str(path.parent)}}
    body, _ = ex.from_notebook_node(node, resources=res)
    return name, _fix_links(body, names)

SITE_CSS = """
body.rcc-page { margin: 0; }
.rcc-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto; padding: 1rem;
  background: #f7f7f9; border-right: 1px solid #e3e3e8; font: 14px/1.5 system-ui, sans-serif; box-sizing: border-box; }
.rcc-sidebar ul { list-style: none; padding: 0; margin: 0.5rem 0; }
.rcc-sidebar li a { display: block; padding: 2px 6px; color: #24292f; text-decoration: none; border-radius: 4px; }
.rcc-sidebar li a:hover { background: #e8e8ee; }
.rcc-sidebar li a.active { background: #2780e3; color: white; }
.rcc-sidebar .rcc-section { margin-top: 0.8rem; font-weight: 600; color: #57606a; text-transform: uppercase; font-size: 12px; }
.rcc-sidebar .rcc-home { font-weight: 700; font-size: 18px; color: #2780e3; text-decoration: none; }
main.rcc-main { margin-left: 15rem; padding: 1rem 2rem 3rem; max-width: 60rem; }
.rcc-title h1.title { margin-bottom: 0.2rem; }
.rcc-title p.description { color: #57606a; font-size: 1.1rem; margin-top: 0; }
math { font-size: 1.1em; }
math[display="block"] { margin: 0.6em 0; }
.rcc-math-error { color: #b00; }
"""

def build_html(out='_site', workers:int=2, only=None, keep_going:bool=False)->tuple[list[Path], dict]:
    "Build every notebook (in sidebar order) into `out` as HTML pages: (pages written, {notebook: error})"
    from concurrent.futures import ProcessPoolExecutor
    out = (ROOT/out) if not Path(out).is_absolute() else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = sidebar_pages()
    names = {p.name: page_name(p) for _, p in entries}
    dup = {n for n in names.values() if list(names.values()).count(n) > 1}
    if dup: raise SystemExit(f'docs html: notebooks map to the same page: {sorted(dup)}')
    def title(p):
        first = next((c for c in read_nb_json(p)['cells'] if c['cell_type'] == 'markdown'), None)
        m = re.match(r'#\s+(.+)', _join(first['source']).strip()) if first else None
        return m.group(1).strip() if m else p.stem
    pages = [(sec, title(p), names[p.name]) for sec, p in entries]
    todo = [p for _, p in entries if only is None or p.name in only]
    written, errors = [], {}
    # workers import this file as the module `docs`: nbdev's show_doc runner (an IPython shell) takes over `__main__`
    if str(ROOT/'tools') not in sys.path: sys.path.insert(0, str(ROOT/'tools'))
    import docs
    # spawn, not fork: a forked child of a process that already runs torch's thread pools can deadlock
    import multiprocessing as mp
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context('spawn')) as pool:
        futs = {pool.submit(docs.render_page, p, pages, names): p for p in todo}
        for f, p in futs.items():
            try: name, page = f.result()
            except Exception as e:
                msg = f'{p.relative_to(ROOT)}: {type(e).__name__}: {e}'
                if 'Error in notebook' in str(e):
                    msg += (
                        '\n(nbdev runs every cell that contains an import while rendering the docs, out of context: '
                        'keep imports in their own cells, as `nbdev_docs` needs too)'
                    )
                if not keep_going: raise SystemExit(f'docs html: {msg}')
                errors[p.name] = msg
                name = names[p.name]
                page = (
                    f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>build error</title></head><body>'
                    f'<p>{html.escape(p.name)} failed to build:</p><pre class="rcc-build-error">{html.escape(msg)}</pre></body></html>'
                )
            (out / name).write_text(page)
            written.append(out / name)
    (out/'rcc-docs.css').write_text(SITE_CSS)
    for f in (ROOT/'nbs').glob('*.css'): shutil.copy(f, out/f.name)
    (out/'demo').mkdir(exist_ok=True)
    for f in DEMO.glob('*.png'): shutil.copy(f, out/'demo'/f.name)   # the demo's committed plots
    return written, errors

def read_nb_json(path):
    import json
    return json.loads(Path(path).read_text())

def html_cmd(out='_site', workers=2, keep_going=False):
    t = time.time()
    pages, errors = build_html(out, workers, keep_going=keep_going)
    print(f'wrote {len(pages)} pages to {out}/ in {time.time()-t:.0f} s; preview: python -m http.server -d {out}')
    for msg in errors.values(): print(f'FAILED {msg}', file=sys.stderr)
    return 1 if errors else 0


# --- demo: the committed results --------------------------------------------------------------------

DEMO = ROOT/'nbs'/'demo'
DEMO_FILES = ('results.json', 'report.md', 'learning_curves.png', 'paired_differences.png')
DEMO_PAGES = (ROOT/'index.ipynb', ROOT/'nbs'/'12_demo.ipynb')

def demo_run(quick:bool, out:Path)->dict:
    "One `rcc-demo` run (default or `--quick` settings) into `out`, pretraining from scratch in a throwaway home"
    from rcc_rank.recipes.demo import run_demo
    from rcc_rank.recipes.demo_setup import DemoConfig

    old = os.environ.get('RCC_RANK_HOME')
    os.environ['RCC_RANK_HOME'] = str(out / 'home')
    try: return run_demo((DemoConfig.quick if quick else DemoConfig)(out_dir=str(out/'run')))
    finally:
        if old is None: os.environ.pop('RCC_RANK_HOME')
        else: os.environ['RCC_RANK_HOME'] = old

def render_demo():
    "Fill every `show_results()` cell of the demo page and index.ipynb with the Markdown of nbs/demo/results.json; then README.md"
    import json, subprocess
    from rcc_rank.recipes.demo_report import demo_markdown
    from rcc_rank.recipes.demo_report import PENDING
    md = demo_markdown(DEMO/'results.json', img='demo/') if (DEMO/'results.json').exists() else PENDING
    for p in DEMO_PAGES:
        nb = json.loads(p.read_text())
        for c in nb['cells']:
            if c['cell_type'] == 'code' and 'show_results(' in ''.join(c['source']):
                c['outputs'] = [
                    dict(
                        output_type='execute_result',
                        execution_count=None,
                        metadata={},
                        data={
                            'text/markdown': md.splitlines(True),
                            'text/plain': ['<IPython.core.display.Markdown object>'],
                        },
                    )
                ]
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        subprocess.run(['nbdev_clean', '--fname', str(p)], check=True, cwd=ROOT)
    return readme()

def demo_cmd(quick=False, src=None):
    "The quick fingerprint always; unless `quick`, the default run (or the finished run folder `src`) into nbs/demo/; then the pages"
    import json, tempfile
    from rcc_rank.recipes.demo_report import fingerprint
    DEMO.mkdir(parents=True, exist_ok=True)
    from rcc_rank.recipes.demo_setup import DemoConfig, demo_chains, data_hash
    with tempfile.TemporaryDirectory() as d:
        fp = dict(quick=fingerprint(demo_run(True, Path(d))), default_data_hash=data_hash(demo_chains(DemoConfig())))
        (DEMO / 'quick.json').write_text(json.dumps(fp, indent=1) + '\n')
        print(f'wrote {DEMO / "quick.json"}')
        if not quick:
            run = Path(src) if src else Path(demo_run(False, Path(d))['out_dir'])
            for f in DEMO_FILES: shutil.copy(run/f, DEMO/f)
            print(f'wrote {", ".join(DEMO_FILES)} to {DEMO}')
    return render_demo()


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme', help='README.md from index.ipynb')
    r.add_argument('--check', action='store_true')
    q = sub.add_parser('quickstart', help="print README's n-th quick-start command")
    q.add_argument('n', type=int)
    h = sub.add_parser('html', help='the docs site as static HTML (offline)')
    h.add_argument('--out', default='_site')
    h.add_argument('--workers', type=int, default=2)
    h.add_argument('--keep-going', action='store_true', help='build the other pages when one fails (still exits 1)')
    dm = sub.add_parser('demo', help='rerun the demo and write nbs/demo/, the demo page and README.md from its results')
    dm.add_argument(
        '--quick', action='store_true', help='only the --quick fingerprint (nbs/demo/quick.json) and the pages'
    )
    dm.add_argument(
        '--from', dest='src', help='copy the results of this finished default run folder instead of running it'
    )
    a = ap.parse_args()
    if a.cmd == 'demo': sys.exit(demo_cmd(a.quick, a.src))
    if a.cmd == 'quickstart':
        print(quickstart(a.n))
        sys.exit(0)
    if a.cmd == 'html': sys.exit(html_cmd(a.out, a.workers, a.keep_going))
    sys.exit(readme(a.check))
