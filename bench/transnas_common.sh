# What bench/transnas_cheap.sh, transnas_label_free.sh and transnas_vkdnw.sh share (sourced, with their
# arguments): score and publish seeded samples of TransNAS-Bench-101, one run per space and task, in
# runs/tnb/<space>_<task>_<NAME><LIMIT>, published to bench/results/tnb/ under the same name. The sourcing
# script sets PROXIES, NAME, PRESETS where it scores VKDNW, BARS=1 for a bars figure of each, and defaults of
# its own for the settings below.
# nDCG@k takes k as the top share of NAS-Bench-201's nDCG@1000 of 9,444 cells.
SPACES=${SPACES:-tnb_micro tnb_macro}
TASKS=${TASKS:-class_scene class_object}
LIMIT=${LIMIT:-100}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}
declare -A SPACE_SIZE=([tnb_micro]=4096 [tnb_macro]=3256)

# The proxies that can score none of a space and task's networks, left out there (each says why when asked):
# - AZ-NAS reads each encoder block's feature map once, and jigsaw's siamese encoder runs once per tile;
# - Zen-NAS needs the feature map before a global pooling, which the dense decoders do not have.
# A proxy that fails on some networks is ranked on the others (the table says on how many): MeCo on macro
# jigsaw, whose layouts that reduce a 64x64 tile to 1x1 before a BatchNorm give its one training-mode sample one
# value per channel there, undefined (the authors' code fails there too).
excluded() {
    case "$1:$2" in
        *:jigsaw) echo "expressivity progressivity trainability" ;;
        *:segmentsemantic|*:normal|*:autoencoder) echo zen ;;
    esac
}
proxies_for() {
    local proxy kept=()
    for proxy in ${PROXIES//,/ }; do
        [[ " $(excluded "$1" "$2") " == *" $proxy "* ]] || kept+=("$proxy")
    done
    (IFS=,; echo "${kept[*]}")
}

# A run is scored until it is published (bench/results/tnb/<run>); then its runs/ directory may be gone (a fresh
# clone, another machine), and scoring it again would start it from nothing. LENDER: the name of a published run
# of the same sample whose scores are taken rather than computed again (evaluate --scores-from).
run() {
    local space task lender
    for space in $SPACES; do
        for task in $TASKS; do
            if [ -d "bench/results/tnb/${space}_${task}_$NAME$LIMIT" ]; then
                echo "${space}_${task}_$NAME$LIMIT: published in bench/results/tnb/, not scored again"; continue
            fi
            lender=()
            if [ -n "${LENDER:-}" ] && [ -d "bench/results/tnb/${space}_${task}_$LENDER$LIMIT" ]; then
                lender=(--scores-from "bench/results/tnb/${space}_${task}_$LENDER$LIMIT")
            fi
            python -m vkdnw_fast.cli evaluate --space "$space" --task "$task" --limit "$LIMIT" --sample-seed 0 \
                --seeds 1 --proxies "$(proxies_for "$space" "$task")" ${PRESETS:+--preset "$PRESETS"} \
                --device "$DEVICE" --workers "$WORKERS" "${lender[@]}" \
                --out "runs/tnb/${space}_${task}_$NAME$LIMIT"
        done
    done
}

publish() {
    local space task published
    for space in $SPACES; do
        for task in $TASKS; do
            published="bench/results/tnb/${space}_${task}_$NAME$LIMIT"
            bench/publish_run.sh "runs/tnb/${space}_${task}_$NAME$LIMIT" "$published" \
                $(( (1000 * LIMIT + ${SPACE_SIZE[$space]} / 2) / ${SPACE_SIZE[$space]} ))
            if [ "${BARS:-0}" = 1 ]; then bench/plot_bars.sh "$published/bars.png" "$published" --sort-by spearman; fi
        done
    done
}

case "${1:-}" in
    run) run ;;
    publish) publish ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
