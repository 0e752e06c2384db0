import io
import logging

from bot.governance.pii import MaskingFilter, mask_cccd, mask_name, mask_phone, mask_text


def test_masks_follow_the_contract_examples() -> None:
    assert mask_cccd("066190001234") == "066*******34"
    assert mask_phone("0905123456") == "09******56"
    assert mask_name("Nguyễn Văn An") == "N. V. A***"
    assert mask_cccd(None) == "" and mask_phone("") == ""


def test_free_text_masking_keeps_codes_that_are_not_pii() -> None:
    text = "CCCD 066190001234, sdt 0905123456, OTP 482913, hồ sơ DLK-261120-00042"
    masked = mask_text(text)
    assert "066190001234" not in masked and "0905123456" not in masked
    assert "066*******34" in masked and "09******56" in masked
    assert "482913" in masked and "DLK-261120-00042" in masked


def test_logging_filter_masks_formatted_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("test.pii")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("linking %s with phone %s", "066190001234", "+84905123456")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "066190001234" not in out and "905123456" not in out
    assert "066*******34" in out
