import numpy as np, scipy.io as sio, scipy.sparse as sp
rng = np.random.default_rng(0)
def gt(h, w):
    seg = np.zeros((h, w), np.uint8)
    seg[2:5, 1:4] = 15
    seg[h-2:, w-3:] = 7
    b = sp.csc_matrix((seg > 0).astype(np.uint8))
    return {'GTcls': {'Segmentation': seg, 'Boundaries': np.array([[b]], dtype=object), 'CategoriesPresent': np.array([[7], [15]], np.uint8)}}, seg
for name, (h, w), comp in [('a', (6, 9), True), ('b', (7, 5), False)]:
    d, seg = gt(h, w)
    sio.savemat(f'/tmp/sbd/{name}.mat', d, do_compression=comp)
    np.save(f'/tmp/sbd/{name}.npy', seg)
print(open('/tmp/sbd/b.mat','rb').read()[:128])
