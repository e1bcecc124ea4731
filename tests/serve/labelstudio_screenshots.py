"""Screenshots of Label Studio's labeling view with mlcil's pre-annotations, in a real headless Chromium.

Not a test: the script behind ``docs/service/img/labelstudio-*.png``. Needs a Label Studio from
``eval "$(.ci/labelstudio.sh)"`` (its admin user and token), Chromium (``apt-get install chromium``) and
playwright-core (``npm install playwright-core@1.65.2`` in a folder given as ``--node-modules``)::

    python tests/serve/labelstudio_screenshots.py --node-modules /tmp/pw/node_modules

It starts ``mlcil serve --encoder minilm``, makes a project of 30 se_cooking questions whose choices
have hints, connects mlcil as the ML backend, and shoots one question's labeling view before any
annotation (zero-shot pre-annotation from the hints) and after 12 annotations, the newest prediction's
tab selected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.serve.labelstudio_client import (LabelStudio, choices_config, choices_result, read_jsonl,  # noqa: E402
                                            start_mlcil, stop)

LABELS = ["baking", "bread", "eggs", "storage-method", "substitutions"]
HINTS = {"baking": "baking cakes, cookies and pastry in the oven", "bread": "bread dough, yeast and loaves",
         "eggs": "cooking eggs", "storage-method": "how to store food", "substitutions": "replacing an ingredient"}
OUT = ROOT / "docs" / "service" / "img"

JS = r"""
const { chromium } = require('playwright-core');
const [url, email, password, shots] = process.argv.slice(1);
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run'] });
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  await page.goto(url + '/user/login/');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  for (const shot of JSON.parse(shots)) {
    await page.goto(url + shot.path);
    await page.waitForSelector(shot.wait, { timeout: 120000 });
    await page.waitForTimeout(shot.settle || 3000);
    if (shot.click) {  // show the newest prediction (the first tab named mlcil-v…)
      await page.getByText(/^mlcil-v\d+$/).first().click();
      await page.waitForTimeout(1500);
    }
    await page.screenshot({ path: shot.file });
    console.log('wrote ' + shot.file);
  }
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def shoot(url: str, email: str, password: str, shots: list[dict], node_modules: str) -> None:
    env = {**os.environ, "NODE_PATH": node_modules}
    subprocess.run(["node", "-e", JS, url, email, password, json.dumps(shots)], check=True, env=env, timeout=600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node-modules", required=True, help="folder holding playwright-core")
    args = ap.parse_args()
    url, token = os.environ["MLCIL_TEST_LABEL_STUDIO"], os.environ["MLCIL_TEST_LABEL_STUDIO_TOKEN"]
    email, password = os.environ["MLCIL_TEST_LABEL_STUDIO_USER"], os.environ["MLCIL_TEST_LABEL_STUDIO_PASSWORD"]
    data = Path(os.environ.get("MLCIL_DATA", ROOT.parent / "shared" / "data"))
    rows = [r for r in read_jsonl(data / "se_cooking" / "se_cooking.jsonl.gz", 400)
            if set(r["labels"]) & set(LABELS)][:30]
    tmp = Path(tempfile.mkdtemp(prefix="ls-shots-"))
    proc, base = start_mlcil(f"sqlite:///{tmp / 'tagger.db'}", "--encoder", "minilm", "--refresh-interval", "0.1",
                             log=tmp / "mlcil.log")
    ls = LabelStudio(url, token)
    try:
        pid = ls.create_project("Cooking questions (mlcil pre-annotations)", choices_config(LABELS, HINTS))
        tids = ls.import_tasks(pid, [{"text": r["text"]} for r in rows])
        ls.connect_backend(pid, base + "/labelstudio")
        target = next(t for t, r in zip(tids[12:], rows[12:]) if "eggs" in r["labels"])
        view = {"path": f"/projects/{pid}/data?task={target}", "wait": ".lsf-choices, [class*=choices]",
                "click": True}
        OUT.mkdir(parents=True, exist_ok=True)
        shoot(url, email, password, [{**view, "file": str(OUT / "labelstudio-before.png")}], args.node_modules)
        for t, r in zip(tids[:12], rows):
            ls.annotate(t, choices_result([lab for lab in r["labels"] if lab in LABELS]))
        ls.retrieve_predictions(pid)
        shoot(url, email, password, [
            {**view, "file": str(OUT / "labelstudio-after.png")}], args.node_modules)
        print("target task", target, "prediction", ls.latest_prediction(target))
    finally:
        ls.close()
        stop(proc)


if __name__ == "__main__":
    main()
