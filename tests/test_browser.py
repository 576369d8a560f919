"""The page in a real browser: Debian's Chromium, driven by Playwright, against app.py as a real process.

test_app.py covers the API through gradio_client; this covers what only the browser does: the
upload widget, the Submit button, the examples gallery and the error toast. Playwright drives
the system Chromium (`apt-get install chromium`); it never downloads a browser of its own.

Selectors are Gradio's own ``data-testid`` attributes and ARIA roles and names (what Gradio's
end-to-end tests rely on), never generated CSS classes. Everything is looked up inside the
classifier's panel: its "Classify" tab beside the monitoring one (``gr.TabbedInterface``), or
the whole page for a plain ``gr.Interface``; only the error toast, which Gradio draws over the
page, is looked up page-wide.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from PIL import Image

from bird_model.artifacts import read_model_folder
from bird_model.web import unknown_verdict
from tests.conftest import RunningApp, serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

# Debian's package puts it at /usr/bin/chromium; the second look-up finds it where PATH is trimmed.
CHROMIUM = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not found (apt-get install -y --no-install-recommends chromium)"
)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -r requirements-dev.txt)"
)

FIRST_PREDICTION_MS = 60_000  # the first call loads TensorFlow's kernels; the shared test machine is slow
TOAST_MS = 30_000


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-log")


@pytest.fixture(scope="module")
def app(trained: Path, log_dir: Path) -> Iterator[RunningApp]:
    # One report an hour per caller: the feedback test's second report shows how a refusal looks.
    with serving({"BIRD_MODEL": str(trained), "BIRD_MONITORING": "1", "BIRD_LOG_DIR": str(log_dir),
                  "BIRD_FEEDBACK_PER_HOUR": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module; each test gets its own fresh page."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
            args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield context.new_page()
    context.close()


def open_classifier(page: Page, url: str) -> Locator:
    """The classifier's panel: the whole app, or its "Classify" tab once there are tabs.

    Gradio renders only the selected tab's panel, so with tabs, the tab is selected and the
    visible panel is returned; lookups inside it cannot hit a look-alike in another tab.
    """
    page.goto(url)
    tab = page.get_by_role("tab", name="Classify", exact=True)
    tab.or_(page.locator('input[type="file"]')).first.wait_for(state="attached")
    if tab.count():
        tab.click()
        return page.get_by_role("tabpanel").filter(visible=True).first  # the outer panel holds the page's own tabs
    return page.locator("gradio-app")


def set_photo(panel: Locator, photo: Path) -> None:
    """Upload as a user's file picker does, and wait until the widget holds the uploaded file."""
    panel.locator('input[type="file"]').set_input_files(photo)
    sync_api.expect(remove_photo_button(panel)).to_be_visible()


def remove_photo_button(panel: Locator) -> Locator:
    """Shown by the image widget once it holds a photo (upload finished, or example picked)."""
    return panel.get_by_role("button", name="Remove Image", exact=True)


def click(panel: Locator, name: str) -> None:
    """The Interface's own buttons come before the outputs' icon buttons, hence ``first``."""
    panel.get_by_role("button", name=name, exact=True).first.click()


def top_label(panel: Locator) -> Locator:
    """The headline of the Label output: the top class, or the unknown verdict."""
    return panel.get_by_test_id("label-output-value")


def details_of(panel: Locator) -> Locator:
    """The API's answer, folded away under "Details (for developers)": opened if closed."""
    details = panel.get_by_test_id("json").filter(visible=True)
    if not details.count():
        panel.get_by_role("button", name=re.compile("Details \\(for developers\\)")).first.click()
    sync_api.expect(details.first).to_be_visible(timeout=TOAST_MS)
    return details.first


def assert_answer_shown(panel: Locator, classes: list[str]) -> str:
    """The headline is the top class with the overlay of where it looked, or the unknown verdict
    with the closest birds named as no match and no overlay. Which one a tiny test model gives
    a photo varies by run, so both are checked as what they are; returns the details' text."""
    headline = top_label(panel).inner_text()
    text = details_of(panel).inner_text()
    assert any(f'"{name}"' in text for name in classes), text
    if headline == unknown_verdict(len(classes)):
        sync_api.expect(panel.get_by_text("Closest known birds, none of them a match")).to_be_visible()
        sync_api.expect(overlay_image(panel)).to_have_count(0)
    else:
        assert headline in classes, headline
        assert_loaded(overlay_image(panel))
    return text


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """A picture of the page for a person to check, its path printed (``pytest -s`` or the failure
    report shows it); ``BIRD_SCREENSHOTS`` collects them all in one folder, from CI too."""
    path = tmp_path / name
    page.screenshot(path=path, full_page=True, animations="disabled")
    if target := os.environ.get("BIRD_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy(path, Path(target) / name))
    print(f"screenshot: {path}")
    return path


def overlay_image(panel: Locator) -> Locator:
    """The "where it looked" overlay beside the answer (``elem_id`` set by bird_model/web.py)."""
    return panel.locator("#overlay img")


def assert_loaded(image: Locator) -> None:
    sync_api.expect(image).to_be_visible(timeout=TOAST_MS)
    deadline = time.monotonic() + TOAST_MS / 1000
    while image.evaluate("image => image.complete ? image.naturalWidth : 0") == 0:
        assert time.monotonic() < deadline, "the overlay did not load"
        time.sleep(0.1)


def test_upload_then_example_are_classified(page: Page, app: RunningApp, trained: Path, tmp_path: Path) -> None:
    folder = read_model_folder(trained)
    panel = open_classifier(page, app.url)

    set_photo(panel, folder.examples()[0])
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    first_details = assert_answer_shown(panel, folder.classes)
    screenshot(page, tmp_path, "known.png")

    # Clearing first makes the next answer observable: the label panel empties, then refills.
    click(panel, "Clear")
    sync_api.expect(top_label(panel)).to_have_count(0)
    example = folder.examples()[-1]
    example_image = page.locator(f'img[src$="/{quote(example.name)}"]')
    assert example_image.evaluate("image => getComputedStyle(image).objectFit") == "contain", "examples uncropped"
    panel.get_by_role("button").filter(has=example_image).click()
    sync_api.expect(remove_photo_button(panel)).to_be_visible()
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    assert assert_answer_shown(panel, folder.classes) != first_details, "the example's answer replaces the first"

    # A photo of no bird at all (the verdict a tiny test model gives it varies: both are checked).
    noise = tmp_path / "noise.png"
    Image.effect_noise((300, 300), 80).convert("RGB").save(noise)
    click(panel, "Clear")
    sync_api.expect(top_label(panel)).to_have_count(0)
    set_photo(panel, noise)
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    assert_answer_shown(panel, folder.classes)
    screenshot(page, tmp_path, "noise-photo.png")


def test_overlay_keeps_the_photos_shape(page: Page, app: RunningApp, trained: Path, tmp_path: Path) -> None:
    """A portrait photo's overlay is a portrait too (within 2%), when the answer has one."""
    folder = read_model_folder(trained)
    portrait = tmp_path / "portrait.jpg"
    with Image.open(folder.examples()[0]) as example:
        example.convert("RGB").resize((300, 480)).save(portrait)
    panel = open_classifier(page, app.url)
    set_photo(panel, portrait)
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    if top_label(panel).inner_text() == unknown_verdict(len(folder.classes)):
        pytest.skip("the tiny test model called this photo unknown, so no overlay is shown")
    image = overlay_image(panel)
    assert_loaded(image)
    width, height = image.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert abs((width / height) / (300 / 480) - 1) < 0.02, (width, height)


def test_on_a_phone_the_answer_comes_into_view(browser: Browser, app: RunningApp, trained: Path,
                                               tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        folder = read_model_folder(trained)
        panel = open_classifier(page, app.url)
        set_photo(panel, folder.examples()[0])
        click(panel, "Submit")
        sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
        sync_api.expect(top_label(panel)).to_be_in_viewport(timeout=TOAST_MS)
        captions = page.locator("#examples .caption-label").all()
        assert len(captions) == len(folder.examples())
        assert all(c.evaluate("node => node.scrollWidth <= node.clientWidth + 1") for c in captions), "captions whole"
        band = page.locator("#examples .grid-wrap").evaluate(
            "wrap => wrap.getBoundingClientRect().height - wrap.querySelector('.grid-container').getBoundingClientRect().height")
        assert band < 48, f"an empty band of {band:.0f} px under the examples"
        screenshot(page, tmp_path, "phone-width.png")
    finally:
        context.close()


def test_the_page_speaks_indonesian_to_an_indonesian_browser(browser: Browser, app: RunningApp, trained: Path,
                                                              tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="id-ID")
    page = context.new_page()
    try:
        folder = read_model_folder(trained)
        panel = open_classifier(page, app.url)
        sync_api.expect(panel.get_by_text("Pengenal spesies burung")).to_be_visible()
        sync_api.expect(panel.get_by_text("Mengirim masukan menyimpan foto Anda")).to_be_visible()
        bad = tmp_path / "upload.jpg"
        write_text_as_jpeg(bad)
        panel.locator('input[type="file"]').set_input_files(bad)
        toast = page.get_by_test_id("toast-text").first
        sync_api.expect(toast).to_contain_text("Berkas ini bukan gambar dalam format yang didukung", timeout=TOAST_MS)
        sync_api.expect(remove_photo_button(panel)).to_have_count(0, timeout=TOAST_MS)
        set_photo(panel, folder.examples()[0])
        click(panel, "Kirim")
        sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
        headline = top_label(panel).inner_text()
        assert headline in [*folder.classes, f"Bukan salah satu dari {len(folder.classes)} burung yang saya kenal"]
        sync_api.expect(panel.get_by_role("button", name=re.compile("^Benar"))).to_be_visible()
        screenshot(page, tmp_path, "indonesian.png")
    finally:
        context.close()


def write_text_as_jpeg(path: Path) -> None:
    path.write_text("not a photo at all")


def write_truncated_jpeg(path: Path) -> None:
    """A real JPEG cut short: the browser still previews its top rows, only decoding fails."""
    full = path.with_name("full.jpg")
    Image.effect_noise((300, 300), 60).convert("RGB").save(full)
    path.write_bytes(full.read_bytes()[:3000])


def test_file_that_is_no_image_is_refused_at_upload_and_the_input_emptied(page: Page, app: RunningApp,
                                                                          tmp_path: Path) -> None:
    """The header says it is no image: the toast says so at once, and no broken-image icon stays."""
    bad = tmp_path / "upload.jpg"
    write_text_as_jpeg(bad)
    panel = open_classifier(page, app.url)
    panel.locator('input[type="file"]').set_input_files(bad)
    assert "The file is not an image in a supported format" in error_toast(page).inner_text()
    sync_api.expect(remove_photo_button(panel)).to_have_count(0, timeout=TOAST_MS)
    screenshot(page, tmp_path, "bad-file.png")


def test_truncated_photo_shows_its_message_in_a_toast(page: Page, app: RunningApp, tmp_path: Path) -> None:
    """PhotoUpload hands the file to our decoder, so the toast says what is wrong with it.

    (Stock ``gr.Image`` fails in Gradio's own preprocessing and shows a bare "Error" with no toast.)
    """
    bad = tmp_path / "upload.jpg"
    write_truncated_jpeg(bad)
    panel = open_classifier(page, app.url)
    set_photo(panel, bad)
    click(panel, "Submit")
    assert "The image data is corrupt or truncated" in error_toast(page).inner_text()
    screenshot(page, tmp_path, "truncated-photo.png")


def error_toast(page: Page) -> Locator:
    toast = page.get_by_test_id("toast-body").filter(has_text="Error").get_by_test_id("toast-text").first
    sync_api.expect(toast).to_be_visible(timeout=TOAST_MS)
    return toast


def test_monitoring_tab_shows_the_report_and_its_plots(
    page: Page, app: RunningApp, trained: Path, tmp_path: Path
) -> None:
    from gradio_client import Client, handle_file

    Client(app.url, verbose=False).predict(handle_file(str(read_model_folder(trained).examples()[0])),
                                           api_name="/predict")
    page.goto(app.url)
    page.get_by_role("tab", name="Monitoring", exact=True).click()
    panel = page.get_by_role("tabpanel").filter(visible=True)
    # The monitor command's headline, in bold (the Markdown's <strong>); other tests' predictions count too.
    headline = panel.locator("strong").filter(has_text=re.compile(r"^(Too little data to judge yet|No alarm|ALARM)"))
    sync_api.expect(headline.first).to_be_visible(timeout=TOAST_MS)
    plots = panel.locator("img")
    sync_api.expect(plots).to_have_count(4, timeout=TOAST_MS)
    for index in range(4):
        assert_loaded(plots.nth(index))
        width = plots.nth(index).evaluate("image => image.complete ? image.naturalWidth : 0")
        assert width > 100, f"plot {index} did not load"
    screenshot(page, tmp_path, "monitoring.png")


def test_a_report_is_made_under_an_answer_confirmed_and_an_error_does_not_stick(
    page: Page, app: RunningApp, trained: Path, log_dir: Path, tmp_path: Path
) -> None:
    """No choice before an answer; a press says what was kept, and keeps it pending review; a
    refusal (this app allows one report an hour per caller) is a toast, and the buttons stay."""
    folder = read_model_folder(trained)
    photo, chosen = folder.examples()[0], folder.classes[-1]
    panel = open_classifier(page, app.url)
    sync_api.expect(panel.get_by_text("Sending feedback keeps your photo")).to_be_visible()
    choice = panel.get_by_role("button", name=f"It is: {chosen}", exact=True)
    set_photo(panel, photo)
    sync_api.expect(choice).to_be_hidden()
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    choice.click()
    sync_api.expect(panel.get_by_text(f"Saved: you said {chosen}. Thank you.")).to_be_visible(timeout=TOAST_MS)
    stored = log_dir / "feedback" / "pending" / chosen
    deadline = time.monotonic() + TOAST_MS / 1000
    while not any(path.stem == hashlib.sha256(photo.read_bytes()).hexdigest() for path in stored.glob("*")):
        assert time.monotonic() < deadline, f"nothing written under {stored}; the app says:\n{app.log()}"
        time.sleep(0.1)
    screenshot(page, tmp_path, "feedback.png")

    other = tmp_path / "other.png"
    Image.effect_noise((200, 200), 50).convert("RGB").save(other)
    click(panel, "Clear")
    sync_api.expect(choice).to_be_hidden()
    set_photo(panel, other)
    click(panel, "Submit")
    sync_api.expect(top_label(panel)).to_be_visible(timeout=FIRST_PREDICTION_MS)
    choice.click()
    assert "an hour" in error_toast(page).inner_text()
    sync_api.expect(choice).to_be_enabled()
    sync_api.expect(choice).to_have_text(f"It is: {chosen}")
    screenshot(page, tmp_path, "feedback-refused.png")
