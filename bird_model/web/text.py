"""Every word the page shows, in English and Indonesian: the one translation table.

The page follows the browser's language. Fixed text (titles, labels, buttons, notes) goes to
the browser as ``gr.I18n`` keys, which Gradio's front end translates; text made per answer
(the verdict, the closest birds, confirmations, errors) is put into words on the server in
the language the browser asks for (``Accept-Language``). Both read :data:`TEXT`. The API's
answers are a contract, not a page: they stay in English whatever the caller's language.

A model folder may name its classes per language (``labels.LANG.json``, a list in the order of
``labels.json``); the page shows those names and falls back to the folder names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import gradio as gr
from gradio.i18n import I18nData

from bird_model.artifacts import MAX_DISPLAY_NAME, ModelFolder, ModelFolderError, display_names_file

"""Longest display name of a class: a bird's name, never a paragraph."""
LANGUAGES = ("en", "id")
"""English first: the fallback for any other browser language."""

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Bird species classifier",
        "intro": "Upload a photo of a bird.",
        "knows": "I know {count} birds: {names}.",
        "knows_many": "I know {count} birds: {names} and {rest} more (see below).",
        "or": "or",
        "tab_one": "One photo",
        "tab_many": "Several photos",
        "photo": "Bird photo",
        "clear": "Clear",
        "submit": "Submit",
        "answer": "Answer · bars: how much it looks like each bird I know (they share 100%, even for a photo of none)",
        "unknown": "Not one of the {count} birds I know",
        "closest": "Closest known birds, none of them a match: {names}",
        "details": "Details (for developers)",
        "details_help": (
            "What the API (`/predict`) returns for this photo. **verdict**: `known` if the photo looks like one of "
            "the birds the model was trained on, `unknown` if it looks like none of them. **label** and "
            "**confidence**: the closest bird and the model's share for it (the shares of all birds add up to 1). "
            "**outlier_score**: how far the photo is from the training photos; above the model's threshold the "
            "verdict is `unknown`. **model**: which model answered (repository and revision, or folder name)."
        ),
        "overlay": "Where it looked for its answer (bright: strongest evidence)",
        "examples": "Examples: click one to try it",
        "feedback_notice": (
            "**Sending feedback keeps your photo.** Telling the model under the answer that it was right, which "
            "bird it is, or none of these stores your photo (its pixels only: no file name, location or camera "
            "data) with your answer, to check and retrain the model. Don't send feedback on a photo you do not "
            "want kept."
        ),
        "was_it_right": "**Was it right?**",
        "right": "Right",
        "right_none": "Right, it is none of these birds",
        "none": "None of these",
        "it_is": "It is: {name}",
        "pick_bird": "It is another bird: pick it",
        "send_bird": "Send: it is this bird",
        "saved": "Saved: you said {said}. Thank you.",
        "already_saved": "Already saved: you said {said}. Thank you.",
        "said_none": "it is none of these birds",
        "no_photo": "No photo received: upload a photo of a bird first.",
        "no_answer": ("Feedback is about an answer: send this photo to be classified first (Submit, or /predict), "
                      "then say what it really is."),
        "limits_title": "What this model knows, and its limits",
        "limits_knows": "**Knows** {count} birds: {names}",
        "limits_all": "all {count}",
        "limits_trained": "**Trained on** {count} photos, starting from the image model `{weights}` (MobileNetV2).",
        "limits_scratch": "none (trained from scratch)",
        "limits_accuracy": ("**Validation accuracy** {accuracy} on {count} photos it had not trained on, from the same "
                            "collection; photos from elsewhere may do worse."),
        "limits_limits": ("**Limits**: it always picks among the birds it knows, so a separate check calls a photo "
                          "unlike all of them unknown; that check is not perfect either. It sees the photo squeezed "
                          "to {size}x{size} pixels: a small or distant bird, several birds, or a drawing can fool it. "
                          "The overlay shows where the evidence for its top answer was, not why."),
        "footer": "Model {model}",
        "footer_tag": "Model {model}, release {tag}",
        "batch_photos": "Photos (up to {count})",
        "batch_run": "Classify all",
        "batch_table": "One row per photo",
        "batch_csv": "Download as CSV",
        "batch_too_many": "Up to {count} photos at once, please: {sent} were sent.",
        "batch_none": "No photos received: choose up to {count} photos first.",
        "col_photo": "photo",
        "col_verdict": "verdict",
        "col_class": "closest bird",
        "col_confidence": "confidence",
        "col_problem": "problem",
        "verdict_known": "known",
        "verdict_unknown": "unknown",
        "verdict_error": "could not be read",
    },
    "id": {
        "title": "Pengenal spesies burung",
        "intro": "Unggah foto burung.",
        "knows": "Saya mengenal {count} burung: {names}.",
        "knows_many": "Saya mengenal {count} burung: {names} dan {rest} lainnya (lihat di bawah).",
        "or": "atau",
        "tab_one": "Satu foto",
        "tab_many": "Beberapa foto",
        "photo": "Foto burung",
        "clear": "Hapus",
        "submit": "Kirim",
        "answer": ("Jawaban · batang: seberapa mirip dengan tiap burung yang saya kenal (jumlahnya 100%, "
                   "bahkan untuk foto yang bukan salah satunya)"),
        "unknown": "Bukan salah satu dari {count} burung yang saya kenal",
        "closest": "Burung terdekat yang saya kenal, tidak ada yang cocok: {names}",
        "details": "Rincian (untuk pengembang)",
        "details_help": (
            "Yang dikembalikan API (`/predict`) untuk foto ini. **verdict**: `known` jika foto mirip salah satu "
            "burung yang dipelajari model, `unknown` jika tidak mirip satu pun. **label** dan **confidence**: burung "
            "terdekat dan bagian model untuknya (bagian semua burung berjumlah 1). **outlier_score**: seberapa jauh "
            "foto dari foto latihan; di atas ambang model, verdict-nya `unknown`. **model**: model yang menjawab "
            "(repositori dan revisi, atau nama folder)."
        ),
        "overlay": "Bagian yang diperhatikan untuk jawabannya (terang: bukti terkuat)",
        "examples": "Contoh: klik salah satu untuk mencobanya",
        "feedback_notice": (
            "**Mengirim masukan menyimpan foto Anda.** Jika Anda memberi tahu model di bawah jawaban bahwa ia benar, "
            "burung apa itu, atau bukan salah satunya, foto Anda (hanya pikselnya: tanpa nama berkas, lokasi, atau "
            "data kamera) disimpan bersama jawaban Anda untuk diperiksa dan melatih ulang model. Jangan mengirim "
            "masukan untuk foto yang tidak ingin Anda simpan."
        ),
        "was_it_right": "**Apakah benar?**",
        "right": "Benar",
        "right_none": "Benar, bukan salah satu burung ini",
        "none": "Bukan salah satunya",
        "it_is": "Ini: {name}",
        "pick_bird": "Burung lain: pilih di sini",
        "send_bird": "Kirim: ini burungnya",
        "saved": "Tersimpan: Anda bilang {said}. Terima kasih.",
        "already_saved": "Sudah tersimpan: Anda bilang {said}. Terima kasih.",
        "said_none": "bukan salah satu burung ini",
        "no_photo": "Tidak ada foto: unggah foto burung terlebih dahulu.",
        # The feedback store's refusals (FeedbackError.reason); their English is the store's own message.
        "refused_per_hour": ("Terima kasih, tetapi demo ini menyimpan paling banyak {count} laporan dari satu "
                             "pengunjung per jam; foto Anda tidak disimpan. Silakan coba lagi nanti."),
        "refused_full": ("Terima kasih, tetapi demo ini sudah menyimpan semua foto masukan yang diizinkan; foto Anda "
                         "tidak disimpan."),
        "refused_not_stored": "Masukan Anda tidak dapat disimpan saat ini; silakan coba lagi nanti.",
        "refused_busy": ("Terima kasih, tetapi demo ini sedang menerima banyak laporan; foto Anda tidak disimpan. "
                         "Silakan coba lagi sebentar lagi."),
        # Files refused before or while decoding (ImageError.REFUSALS holds their English).
        "refused_empty": "Berkasnya kosong.",
        "refused_not_image": "Berkas ini bukan gambar dalam format yang didukung ({formats}).",
        "refused_unreadable": "Gambar tidak dapat dibaca ({detail}).",
        "refused_too_large": "Gambar terlalu besar untuk diproses.",
        "refused_corrupt": "Data gambar rusak atau terpotong ({detail}).",
        "refused_pixel_data": ("{format} ini terlalu besar untuk dibuka dengan cepat: {width}x{height} piksel dengan {bits} "
                               "bit adalah {megabytes} MB data piksel, melebihi batas {limit} MB; simpan lebih kecil, "
                               "atau sebagai JPEG."),
        "refused_slow_compression": ("Berkas {format} ini memakai {compression}, yang terlalu lama dibuka; simpan "
                                     "sebagai PNG atau JPEG."),
        "refused_progressive_memory": ("JPEG progresif ini terlalu besar untuk dibuka: {width}x{height} piksel dengan "
                                       "warna resolusi penuh memerlukan terlalu banyak memori; simpan ulang sebagai JPEG "
                                       "biasa (baseline), atau lebih kecil."),
        "refused_progressive_slow": ("{scans} pindaian progresif JPEG ini pada {width}x{height} piksel terlalu lama "
                                     "dibuka; simpan ulang sebagai JPEG biasa (baseline), atau lebih kecil."),
        "refused_too_many_scans": ("JPEG ini memiliki lebih dari {scans} pindaian progresif, yang terlalu lama dibuka; "
                                   "simpan ulang sebagai JPEG biasa."),
        "refused_too_many_pixels": ("Gambar terlalu besar: {width}x{height} piksel melebihi batas {megapixels} "
                                    "megapiksel."),
        "refused_too_many_pixels_for": ("Gambar terlalu besar: {width}x{height} piksel melebihi batas {megapixels} "
                                        "megapiksel untuk {format}."),
        "refused_too_small": "Gambar terlalu kecil: {width}x{height} piksel; paling sedikit {side}x{side} diperlukan.",
        "no_answer": ("Masukan adalah tentang sebuah jawaban: kirim foto ini untuk dikenali terlebih dahulu (Kirim, "
                      "atau /predict), lalu katakan burung apa sebenarnya."),
        "limits_title": "Yang diketahui model ini, dan batasnya",
        "limits_knows": "**Mengenal** {count} burung: {names}",
        "limits_all": "semua {count}",
        "limits_trained": "**Dilatih dengan** {count} foto, berawal dari model gambar `{weights}` (MobileNetV2).",
        "limits_scratch": "tidak ada (dilatih dari awal)",
        "limits_accuracy": ("**Akurasi validasi** {accuracy} pada {count} foto yang tidak dipakai untuk latihan, dari "
                            "koleksi yang sama; foto dari tempat lain bisa lebih buruk."),
        "limits_limits": ("**Batas**: model selalu memilih di antara burung yang dikenalnya, jadi pemeriksaan terpisah "
                          "menyebut foto yang tidak mirip satu pun sebagai tidak dikenal; pemeriksaan itu juga tidak "
                          "sempurna. Model melihat foto yang diperkecil menjadi {size}x{size} piksel: burung kecil atau "
                          "jauh, beberapa burung, atau gambar bisa mengecohnya. Lapisan warna menunjukkan letak bukti "
                          "untuk jawaban teratasnya, bukan alasannya."),
        "footer": "Model {model}",
        "footer_tag": "Model {model}, rilis {tag}",
        "batch_photos": "Foto (maksimal {count})",
        "batch_run": "Kenali semua",
        "batch_table": "Satu baris per foto",
        "batch_csv": "Unduh sebagai CSV",
        "batch_too_many": "Maksimal {count} foto sekaligus: {sent} foto dikirim.",
        "batch_none": "Tidak ada foto: pilih maksimal {count} foto terlebih dahulu.",
        "col_photo": "foto",
        "col_verdict": "putusan",
        "col_class": "burung terdekat",
        "col_confidence": "keyakinan",
        "col_problem": "masalah",
        "verdict_known": "dikenal",
        "verdict_unknown": "tidak dikenal",
        "verdict_error": "tidak bisa dibaca",
    },
}


def display_names(folder: ModelFolder, language: str) -> dict[str, str]:
    """Class name -> the name to show in ``language``: ``labels.LANG.json`` where the model folder
    has one (a list of names in the order of ``labels.json``), else the folder names themselves.

    A downloaded model folder is a stranger's file: a list of the wrong length or with anything
    but short printable strings is refused in one line at start-up (``ModelFolderError``).
    """
    path = folder.path / display_names_file(language)
    if not path.is_file():
        return {name: name for name in folder.classes}
    try:
        shown = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"{path.name} is not readable JSON ({error}).") from error
    if (not isinstance(shown, list) or len(shown) != len(folder.classes)
            or not all(isinstance(name, str) and 0 < len(name) <= MAX_DISPLAY_NAME and name.isprintable() for name in shown)):
        raise ModelFolderError(f"{path.name} must list {len(folder.classes)} printable names of at most {MAX_DISPLAY_NAME} "
                               "characters, in the order of labels.json.")
    return dict(zip(folder.classes, shown))


def language_of(request: gr.Request | None) -> str:
    """The first of the browser's languages (``Accept-Language``) that the table has; English otherwise."""
    header = request.headers.get("accept-language", "") if request is not None else ""
    for part in header.split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in TEXT:
            return code
    return LANGUAGES[0]


def say(language: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``language`` (English where the table lacks it), filled in."""
    return TEXT.get(language, TEXT["en"]).get(key, TEXT["en"][key]).format(**values)


def say_refusal(error: Exception, language: str) -> str:
    """A refused file or report in ``language``: the table's ``refused_REASON`` for the error's
    ``reason`` (:class:`bird_model.refusal.Refusal`, :class:`bird_model.feedback.FeedbackError`),
    filled with its ``values``; else the error's own words, which are English."""
    reason = getattr(error, "reason", None)
    translated = TEXT.get(language, {}).get(f"refused_{reason}") if reason else None
    return translated.format(**error.values) if translated else str(error)


class Words:
    """The page's fixed text as ``gr.I18n`` keys, including text made once when the page is built
    (the class list, the limits note): each such text gets a key of its own, in every language.

    The page is built with one; ``Blocks.launch(i18n=words.i18n())`` hands the table to the browser.
    """

    def __init__(self) -> None:
        self._made: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}

    def __call__(self, key: str, **values: object) -> I18nData:
        """A key of :data:`TEXT`, filled in with ``values`` now, for the browser to translate."""
        if not values:
            return I18nData(key)
        return self.made(key, {language: say(language, key, **values) for language in LANGUAGES})

    def made(self, key: str, texts: Mapping[str, str]) -> I18nData:
        """A text composed on the server per language (``texts``: language -> text), under a new key."""
        unique = f"{key}#{len(self._made[LANGUAGES[0]])}"
        for language in LANGUAGES:
            self._made[language][unique] = texts.get(language, texts[LANGUAGES[0]])
        return I18nData(unique)

    def i18n(self) -> gr.I18n:
        """The table for ``Blocks.launch(i18n=...)``: every key of :data:`TEXT` and every text made."""
        return gr.I18n(**{language: {**TEXT[language], **self._made[language]} for language in LANGUAGES})
