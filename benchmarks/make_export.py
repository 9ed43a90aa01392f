"""Make a realistic synthetic chat export from our own training data.

Buyer turns are drawn from data/messages (mostly `other` chat turns, some disputes),
seller turns from a list of typical replies; conversations have ids and timestamps.

    python benchmarks/make_export.py --rows 1000000 -o benchmarks/out/export_utf8.csv
    python benchmarks/make_export.py --rows 300 --encoding gb18030 -o data/examples/chat_export_gb18030.csv
    python benchmarks/make_export.py --rows 200000 --unique -o benchmarks/out/export_unique.csv
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.training import load_corpus  # noqa: E402

SELLER_REPLIES = [
    "亲，在的，请问有什么可以帮您", "好的亲，马上为您查询", "亲，已经为您备注了哦", "稍等一下哈，我看看物流",
    "非常抱歉给您带来不便", "亲可以拍个照片给我们看看吗", "这边已经给您登记了，仓库会尽快处理", "亲，48小时内发货的哦",
    "默认发中通，需要顺丰的话补差价就可以", "亲，这款是正品，支持专柜验货", "尺码建议您拍L码", "好的呢，感谢您的支持",
    "亲，退货地址发您了，请注意查收", "已经帮您申请退款了，请留意", "亲，实在抱歉，我们马上给您补发", "有什么问题随时联系我们哦",
    "您好，欢迎光临本店", "这个价格已经是最低了哦亲", "亲，可以领取店铺优惠券再下单", "快递显示已经到您那边的驿站了",
    "我们会反馈给快递公司的", "亲，这边给您申请一个小补偿", "好的，已经改好地址了", "这边帮您催一下快递",
]


def build(rows: int, seed: int, unique: bool = False) -> list[list[str]]:
    rng = random.Random(seed)
    corpus = load_corpus([ROOT / "data" / "messages"])
    others = corpus[corpus["label"] == "other"]["text"].tolist()
    disputes = corpus[corpus["label"] != "other"]["text"].tolist()
    start = dt.datetime(2026, 11, 1, 8, 0, 0)
    out, conversation = [], 0
    while len(out) < rows:
        conversation += 1
        when = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 25))
        session = f"S{conversation:08d}"
        for turn in range(rng.randint(2, 10)):
            buyer = turn % 2 == 0 or rng.random() < 0.3
            if buyer:
                text = rng.choice(disputes) if rng.random() < 0.25 else rng.choice(others)
                if unique:  # worst case for the label cache: no buyer text repeats
                    text = f"{text} {len(out)}"
            else:
                text = rng.choice(SELLER_REPLIES)
            when += dt.timedelta(seconds=rng.randint(5, 600))
            out.append([session, when.strftime("%Y-%m-%d %H:%M:%S"), "买家" if buyer else "客服", text])
            if len(out) == rows:
                break
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--unique", action="store_true", help="make every buyer message distinct")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    with open(args.output, "w", encoding=args.encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["会话ID", "时间", "发送方", "聊天内容"])
        writer.writerows(build(args.rows, args.seed, args.unique))


if __name__ == "__main__":
    main()
